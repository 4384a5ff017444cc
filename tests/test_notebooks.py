"""Every notebook runs top to bottom in a fresh kernel, offline.

The notebooks' first cell installs jaxsoft only when it is not importable; here
it is, so nothing is downloaded. `02` runs with its parameters cell overridden
(the way papermill injects parameters) to the embedded `digits` dataset.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# Extra source run right after a notebook's "parameters" cell.
PARAMETER_OVERRIDES: dict[str, str] = {
    "02_train_mnist.ipynb": 'DATASET = "digits"\nEPOCHS = 3\n',
}


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def inject_parameters(notebook, source: str) -> None:
    """Inserts ``source`` after the cell tagged "parameters" (papermill's rule)."""
    for index, cell in enumerate(notebook.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            injected = nbformat.v4.new_code_cell(source)
            injected.metadata["tags"] = ["injected-parameters"]
            notebook.cells.insert(index + 1, injected)
            return
    raise AssertionError("the notebook has no cell tagged 'parameters'")


def test_there_are_notebooks():
    assert [p.name for p in notebook_paths()][:1] == ["01_softmax_regression.ipynb"]


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, (
                f"{path.name} has outputs; clear them before committing"
            )


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    if path.name in PARAMETER_OVERRIDES:
        inject_parameters(notebook, PARAMETER_OVERRIDES[path.name])
    # The kernel inherits this environment; datasets are prepared under tmp_path.
    monkeypatch.setenv(
        "TFDS_DATA_DIR", os.environ.get("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    )
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    assert any(
        output.get("output_type") == "stream"
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    ), "the notebook printed nothing"
