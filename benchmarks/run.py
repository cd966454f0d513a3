"""Run every benchmark script in this folder and print their JSON rows.

Usage: ``python benchmarks/run.py [--only SUBSTRING ...] [--out rows.jsonl]``. Each script
prints one JSON object per line; other lines are passed through to stderr. A failing script
is reported as a row with ``"error"`` and does not stop the others.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="run scripts whose name has these")
    parser.add_argument("--out", help="also append the rows to this JSON-lines file")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per script")
    args, passthrough = parser.parse_known_args()
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != "run.py")
    if args.only:
        scripts = [p for p in scripts if any(s in p.stem for s in args.only)]
    rows = []
    for script in scripts:
        print(f"# {script.name}", file=sys.stderr, flush=True)
        try:
            proc = subprocess.run(
                [sys.executable, str(script), *passthrough],
                capture_output=True,
                text=True,
                timeout=args.timeout,
            )
        except subprocess.TimeoutExpired:
            rows.append({"script": script.name, "error": f"timed out after {args.timeout}s"})
            print(json.dumps(rows[-1]), flush=True)
            continue
        for line in proc.stdout.splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                print(line, file=sys.stderr)
                continue
            row.setdefault("script", script.name)
            rows.append(row)
            print(json.dumps(row), flush=True)
        if proc.returncode != 0:
            rows.append({"script": script.name, "error": proc.stderr.strip()[-500:]})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        with open(args.out, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
