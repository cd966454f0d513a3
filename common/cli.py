"""The ``diffdyn`` command and the interface through which packages add to it.

A workflow is a function ``run(cfg, ctx) -> metrics`` that takes its typed dataclass config
and a `RunContext`; `command` registers it as ``diffdyn <group> <verb>``, whose options are
generated from the config's fields, and `quickstart_part` adds a part to
``diffdyn quickstart``. `main` is the entry point (``python -m diffdyn.common.cli`` runs it too).
"""

import sys

from ._cli import (
    COMMANDS as COMMANDS,
)
from ._cli import (
    QUICKSTART as QUICKSTART,
)
from ._cli import (
    RunContext as RunContext,
)
from ._cli import (
    command as command,
)
from ._cli import (
    load_plugins as load_plugins,
)
from ._cli import (
    main as main,
)
from ._cli import (
    quickstart_part as quickstart_part,
)

__all__ = [
    "COMMANDS",
    "QUICKSTART",
    "RunContext",
    "command",
    "quickstart_part",
    "load_plugins",
    "main",
]

if __name__ == "__main__":
    sys.exit(main())
