"""Time the ``diffdyn`` command's answers that must not wait for JAX: ``diffdyn --help`` and
``diffdyn --version`` (whole processes, as a user runs them), against ``python -c pass``.

Prints one JSON row per command: the median of ``--repeats`` wall times and the ratio to the
bare interpreter start.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _median_seconds(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    python = sys.executable
    bare = _median_seconds([python, "-c", "pass"], args.repeats)
    load = os.getloadavg()[0]
    for name, argv in (
        ("diffdyn --help", [python, "-m", "diffdyn", "--help"]),
        ("diffdyn --version", [python, "-m", "diffdyn", "--version"]),
        ("diffdyn pde --help", [python, "-m", "diffdyn", "pde", "--help"]),
        ("diffdyn pde fit --help", [python, "-m", "diffdyn", "pde", "fit", "--help"]),
    ):
        seconds = _median_seconds(argv, args.repeats)
        row = {
            "benchmark": "cli_help",
            "command": name,
            "seconds": round(seconds, 4),
            "python_start_seconds": round(bare, 4),
            "ratio_to_python_start": round(seconds / bare, 2),
            "load_average": round(load, 2),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
