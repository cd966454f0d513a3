"""Check an installed diffdyn: one import name, nothing generic at the top of site-packages.

Run it from outside the repository with the interpreter of the environment to check. With
``--with-py-pde`` it also checks that py-pde's ``pde`` and diffdyn's ``diffdyn.pde`` are both
importable from the same environment.
"""

import importlib
import importlib.metadata
import sys
import sysconfig
from pathlib import Path

import diffdyn
import diffdyn.common
from diffdyn import nca, oscillators, pde, rnn  # noqa: F401

assert diffdyn.__version__ == importlib.metadata.version("diffdyn"), diffdyn.__version__
assert pde.GrayScott().channels == 2
site = Path(sysconfig.get_paths()["purelib"])
for name in ("common", "nca", "pde", "oscillators", "rnn"):
    if name == "pde" and "--with-py-pde" in sys.argv:
        continue
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        continue
    raise SystemExit(f"check_install: `import {name}` works; diffdyn must not install it")
for name in ("common", "nca", "oscillators", "rnn"):
    assert not (site / name).exists(), f"{site / name} exists"
if "--with-py-pde" in sys.argv:
    py_pde = importlib.import_module("pde")
    assert hasattr(py_pde, "ScalarField") and hasattr(py_pde, "CartesianGrid"), py_pde.__file__
    assert Path(py_pde.__file__).parent == site / "pde", py_pde.__file__
    grid = py_pde.CartesianGrid([[0, 1]], 8)
    assert py_pde.ScalarField(grid, 1.0).average == 1.0
print(f"check_install: diffdyn {diffdyn.__version__} from {Path(diffdyn.__file__).parent}: ok")
