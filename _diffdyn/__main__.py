"""The ``diffdyn`` command (also ``python -m diffdyn``).

The command's groups and verbs are listed here, so that ``diffdyn --help``, ``diffdyn GROUP
--help`` and ``--version`` answer without importing JAX. Everything else goes to
`diffdyn.common.cli.main`, which imports only the group it runs. A test checks this table
against the commands the packages register.
"""

from __future__ import annotations

import sys

from diffdyn import __version__

GROUPS: dict[str, tuple[str, dict[str, str]]] = {
    "quickstart": ("a short tour of every package, on CPU", {}),
    "pde": (
        "semi-discrete PDEs: simulate, and fit to data",
        {
            "simulate": "simulate a fixed PDE from its literature initial state",
            "fit": "fit a fixed or neural PDE to a trajectory",
        },
    ),
    "nca": (
        "neural cellular automata",
        {
            "train": "train a neural cellular automaton",
            "run": "roll out a trained NCA, erase half, let it regrow and write a GIF",
            "analyse": "perception sensitivities, fixed point and its stability of a trained NCA",
        },
    ),
    "oscillators": (
        "Kuramoto networks, KuraNet and dynamics discovery",
        {
            "kuramoto": "simulate a Kuramoto network and plot its phases and R(t)",
            "kuranet": "train KuraNet on an experiment and compare it with a control",
            "discover": "learn an oscillator's dynamics with a neural ODE",
        },
    ),
    "rnn": (
        "rate RNNs and Lyapunov spectra",
        {
            "lyapunov": "Lyapunov spectrum of one rate network (in float64)",
            "chaos-sweep": (
                "largest exponent and dimension versus the coupling scale or "
                "the spread of gains or shifts (in float64)"
            ),
            "train": "train a network towards a target spectrum (in float64)",
            "import-connectome": (
                "convert a FlyStability region-of-interest folder into a connectome folder"
            ),
        },
    ),
    "node": (
        "neural ODEs: classification and density estimation",
        {"fit": "fit a neural ODE classifier, CNF, image or graph classifier, or series model"},
    ),
}
"""Groups by name: their one-line description and their verbs with one-line help."""

_USAGE = "usage: diffdyn [-h] [--version] COMMAND ..."


def _overview() -> str:
    lines = [
        _USAGE,
        "",
        "Differentiable simulation in JAX: NCA, PDEs, oscillators, RNNs, neural DEs.",
        "",
        "commands:",
    ]
    for group, (text, _) in GROUPS.items():
        lines.append(f"  {group:<12} {text}")
    lines += [
        "",
        "options:",
        "  -h, --help   show this help message and exit",
        "  --version    show the version and exit",
        "",
        "`diffdyn GROUP --help` lists a group's verbs, `diffdyn GROUP VERB --help` their options.",
    ]
    return "\n".join(lines)


def _group_help(group: str) -> str:
    text, verbs = GROUPS[group]
    lines = [f"usage: diffdyn {group} [-h] VERB ...", "", text, "", "verbs:"]
    lines += [f"  {verb:<12} {help_text}" for verb, help_text in verbs.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``diffdyn`` command; returns the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(_overview())
        return 0
    if args[0] == "--version":
        print(f"diffdyn {__version__}")
        return 0
    group = args[0]
    if group in GROUPS and group != "quickstart" and args[1:2] in ([], ["-h"], ["--help"]):
        print(_group_help(group))
        return 0 if args[1:] else 2
    from diffdyn.common.cli import main as run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
