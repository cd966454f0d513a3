"""diffdyn core: models, operators, solving, training, logging and the CLI."""
