"""The public API: one import name, explicit exports, private modules kept private, docs."""

import ast
import importlib
import importlib.metadata
import inspect
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import diffdyn

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {  # public package -> its folder in the repository
    "diffdyn.common": "common",
    "diffdyn.common.neural_de": "common/neural_de",
    "diffdyn.nca": "nca",
    "diffdyn.pde": "pde",
    "diffdyn.oscillators": "oscillators",
    "diffdyn.rnn": "rnn",
}
PUBLIC_MODULES = {"diffdyn.common.cli"}  # the command line's plugin interface
# the one private module that every package may import (argument checks, atomic writes)
SHARED_PRIVATE = "diffdyn.common._helpers"
DOC_PAGES = {**{p: p.split(".")[-1] for p in PACKAGES}, "diffdyn.common.cli": "cli"}


def _public_names(module: types.ModuleType) -> list[str]:
    return [
        n
        for n in dir(module)
        if not n.startswith("_") and not isinstance(getattr(module, n), types.ModuleType)
    ]


def test_the_version_is_the_distribution_version():
    assert diffdyn.__version__ == importlib.metadata.version("diffdyn")


@pytest.mark.parametrize("package", sorted(PACKAGES) + sorted(PUBLIC_MODULES))
def test_every_public_name_is_exported_on_purpose_and_documented(package):
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(_public_names(module))
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            doc = inspect.getdoc(obj) or ""
            assert doc and not doc.startswith(f"{name}("), f"{package}.{name} has no docstring"


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_every_exported_constant_has_a_docstring(package):
    module = importlib.import_module(package)
    constants = {
        n
        for n in module.__all__
        if not (inspect.isclass(getattr(module, n)) or callable(getattr(module, n)))
    }
    documented = set()
    for path in (ROOT / PACKAGES[package]).glob("_*.py"):
        body = ast.parse(path.read_text()).body
        for node, after in zip(body, body[1:], strict=False):
            targets = (
                node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            )
            docstring = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
            if docstring and isinstance(after.value.value, str):
                documented |= {t.id for t in targets if isinstance(t, ast.Name)}
    assert constants <= documented, sorted(constants - documented)


def test_modules_of_a_package_are_private():
    for folder in PACKAGES.values():
        for path in (ROOT / folder).glob("*.py"):
            dotted = "diffdyn." + f"{folder}/{path.stem}".replace("/", ".")
            assert path.stem.startswith("_") or dotted in PUBLIC_MODULES, path


def _imports(path: Path, source: str) -> list[str]:
    """The absolute module names ``source`` (the file at ``path``) imports from."""
    out = []
    package = None
    rel = path.relative_to(ROOT)
    for name, folder in PACKAGES.items():
        if rel.parent.as_posix() == folder:
            package = name
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                names = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
                out += names
            elif node.module:
                out.append(node.module)
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return out


def _family(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _sources():
    """Every Python source of the project, notebooks' code cells included."""
    for path in sorted(ROOT.rglob("*.py")):
        if not {".venv", "build", "site"} & set(path.relative_to(ROOT).parts):
            yield path, path.read_text()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        yield path, code


def test_private_modules_are_not_imported_across_packages():
    offences = []
    for path, source in _sources():
        rel = path.relative_to(ROOT)
        here = (
            "diffdyn." + rel.parts[0]
            if rel.parts[0] in {"common", "nca", "pde", "oscillators", "rnn"}
            else None
        )
        for module in _imports(path, source):
            private = any(
                part.startswith("_") and not part.endswith("__") for part in module.split(".")[1:]
            )
            if not module.startswith("diffdyn") or not private or module == SHARED_PRIVATE:
                continue
            if here is None or _family(module) != here:
                offences.append(f"{rel}: {module}")
    assert offences == []


def test_nothing_imports_the_old_top_level_names():
    pattern = re.compile(r"^\s*(from|import) (common|nca|pde|oscillators|rnn)\b", re.M)
    offences = [str(p.relative_to(ROOT)) for p, source in _sources() if pattern.search(source)]
    readme = (ROOT / "README.md").read_text()
    assert offences == [] and not pattern.search(readme)


def test_only_diffdyn_is_importable_in_a_fresh_interpreter(tmp_path):
    code = (
        "import importlib\n"
        "import diffdyn.common, diffdyn.nca, diffdyn.pde, diffdyn.oscillators, diffdyn.rnn\n"
        "from diffdyn.common import Trainer, solve\n"
        "for name in ('common', 'nca', 'pde', 'oscillators', 'rnn'):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError:\n"
        "        continue\n"
        "    raise SystemExit(f'{name} is importable')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.heavy
def test_the_api_reference_builds_strictly_and_lists_every_public_name(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    assert mkdocs is not None, "install the docs extra: pip install -e '.[docs]'"
    site = tmp_path / "site"
    proc = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for package, page in DOC_PAGES.items():
        html = (site / "api" / page / "index.html").read_text()
        anchors = set(re.findall(r'id="([^"]+)"', html))
        module = importlib.import_module(package)
        missing = [n for n in module.__all__ if f"{package}.{n}" not in anchors]
        assert missing == [], (package, missing)
    assert "arithmatex" in (site / "api" / "pde" / "index.html").read_text()  # maths marked up


def test_every_name_the_readme_imports_is_public():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    imported = []
    for block in blocks:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("diffdyn"):
                module = importlib.import_module(node.module)
                imported += [(node.module, a.name) for a in node.names]
                assert all(a.name in getattr(module, "__all__", dir(module)) for a in node.names), (
                    node.module
                )
    assert len(imported) >= 10
