"""mkdocs hook: lay the repository's folders out as the installed `diffdyn` package for griffe.

The repository maps its top-level folders onto the `diffdyn` namespace through setuptools'
`package-dir` (see pyproject.toml), and griffe reads source trees as they lie on disk. So this
hook writes `build/api/diffdyn/`, symbolic links in the installed layout, which mkdocs.yml
gives mkdocstrings as its search path. It runs when mkdocs loads the hook, before any plugin
reads its configuration.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYOUT = {
    "__init__.py": "_diffdyn/__init__.py",
    "common": "common",
    "nca": "nca",
    "pde": "pde",
    "oscillators": "oscillators",
    "rnn": "rnn",
}


def _link_package() -> None:
    package = ROOT / "build" / "api" / "diffdyn"
    package.mkdir(parents=True, exist_ok=True)
    for name, target in LAYOUT.items():
        link = package / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(ROOT / target)


_link_package()
