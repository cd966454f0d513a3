"""Every notebook in notebooks/ runs top to bottom with small settings (DIFFDYN_QUICK=1)."""

import os
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
#: Notebooks whose quick mode takes over ~40 s on 2 cores: run by ``-m heavy`` (CI does).
HEAVY = {
    "core",
    "discovery",
    "homotopy",
    "kuranet_cluster",
    "kuranet_global",
    "kuranet_image",
    "lyapunov",
    "nca",
    "nca_data",
    "neural_de_irregular",
    "neural_de_quickstart",
    "neural_de_tutorials",
    "neural_de_zoo",
    "pde",
    "rnn_training",
}
CASES = [
    pytest.param(p, id=p.stem, marks=[pytest.mark.heavy] if p.stem in HEAVY else [])
    for p in NOTEBOOKS
]


@pytest.mark.parametrize("path", CASES)
def test_notebook_runs(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("DIFFDYN_QUICK", "1")
    monkeypatch.setenv("DIFFDYN_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    assert os.environ["DIFFDYN_QUICK"] == "1"
