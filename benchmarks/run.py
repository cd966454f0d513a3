"""Run every benchmark script in this folder and print their JSON rows.

Usage::

    python benchmarks/run.py [--device cpu|gpu] [--only SUBSTRING ...] [--out rows.jsonl]
                             [--markdown table.md] [--timeout SECONDS] [script options ...]

Each script prints one JSON object per line; other lines are passed through to stderr. A
failing script is reported as a row with ``"error"`` and does not stop the others.

``--device gpu`` runs the suite on a CUDA build of JAX: it first checks that JAX's default
backend is a GPU (and stops with one line if not), sets ``DIFFDYN_BENCH_DEVICE=gpu`` so that
each script's PyTorch side runs on ``cuda`` with synchronised timers, gives the scripts the
sizes in ``GPU_ARGS`` (larger grids, shorter CPU-side references) and skips the scripts in
``CPU_ONLY``, writing a row that says why. Every row carries ``device`` and ``loadavg``.
``--markdown`` also writes the rows as one Markdown table per benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

# scripts whose question is about the CPU itself
CPU_ONLY = {
    "cli_help.py": "times process start-up, the same on any device",
    "ensemble.py": "compares against a pool of CPU processes",
    "split_grid.py": "splits a grid over forced CPU devices",
    "rnn_qr.py": "compares CPU QR routines (LAPACK threads against XLA's)",
}
# GPU sizes: bigger grids, and the CPU-side references (numpy, scipy) kept short
GPU_ARGS = {
    "nca_speed.py": ["--batch", "8", "--size", "64", "--infer-size", "1024", "--repeats", "5"],
    "pde_gray_scott.py": ["--sizes", "128", "256", "--repeats", "3"],
    "rnn_lyapunov.py": ["--t-sim", "5"],
    "discovery_homotopy.py": ["--steps", "12"],
    "kuranet_train.py": ["--steps", "20"],
    "rnn_cost_scaling.py": ["--ns", "250,500,1000,2000,4000", "--ks", "10,20,40,80,160"],
    "trainer_overhead.py": ["--repeats", "3"],
}


def check_backend(device: str) -> str:
    """The JAX device kind, after checking the default backend matches ``device``."""
    probe = "import jax; print(jax.default_backend(), jax.devices()[0].device_kind, sep='|')"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"JAX did not start: {out.stderr.strip().splitlines()[-1:]}")
    backend, kind = out.stdout.strip().splitlines()[-1].split("|", 1)
    if (device == "gpu") != (backend in ("gpu", "cuda", "rocm")):
        sys.exit(f"--device {device} asked, but JAX's default backend is {backend!r} ({kind})")
    return kind


def markdown(rows: list[dict]) -> str:
    """One table per benchmark, columns = the union of the rows' keys."""
    out = []
    by_bench: dict[str, list[dict]] = {}
    for r in rows:
        by_bench.setdefault(str(r.get("benchmark", r.get("script"))), []).append(r)
    for name, group in by_bench.items():
        keys = [k for k in dict.fromkeys(k for r in group for k in r) if k != "benchmark"]
        out += [f"### {name}", "", "| " + " | ".join(keys) + " |"]
        out.append("|" + "---|" * len(keys))
        for r in group:
            cells = []
            for k in keys:
                v = r.get(k, "")
                cells.append(f"{v:.4g}" if isinstance(v, float) else str(v).replace("|", "/"))
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--only", nargs="*", default=[], help="run scripts whose name has these")
    parser.add_argument("--out", help="also append the rows to this JSON-lines file")
    parser.add_argument("--markdown", help="also write the rows as Markdown tables to this file")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per script")
    args, passthrough = parser.parse_known_args()
    kind = check_backend(args.device)
    env = {**os.environ, "DIFFDYN_BENCH_DEVICE": args.device}
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != "run.py" and p.name[0] != "_")
    if args.only:
        scripts = [p for p in scripts if any(s in p.stem for s in args.only)]
    rows = []

    def keep(row: dict) -> None:
        row.setdefault("device", args.device)
        row.setdefault("device_kind", kind)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")

    for script in scripts:
        if args.device == "gpu" and script.name in CPU_ONLY:
            keep({"script": script.name, "skipped": CPU_ONLY[script.name]})
            continue
        extra = GPU_ARGS.get(script.name, []) if args.device == "gpu" else []
        print(f"# {script.name} {' '.join(extra + passthrough)}", file=sys.stderr, flush=True)
        try:
            proc = subprocess.run(
                [sys.executable, str(script), *extra, *passthrough],
                capture_output=True,
                text=True,
                timeout=args.timeout,
                env=env,
            )
        except subprocess.TimeoutExpired as e:
            stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            proc = None
        else:
            stdout = proc.stdout
        for line in stdout.splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                print(line, file=sys.stderr)
                continue
            row.setdefault("script", script.name)
            keep(row)
        if proc is None:
            keep({"script": script.name, "error": f"timed out after {args.timeout}s"})
        elif proc.returncode != 0:
            keep({"script": script.name, "error": proc.stderr.strip()[-500:]})
    if args.markdown:
        Path(args.markdown).write_text(markdown(rows))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
