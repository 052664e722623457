"""The example notebook runs top to bottom (its cells check what it found: by `collect`,
then in the index `run` built)."""

from __future__ import annotations

import pathlib

import nbformat
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "examples" / "explore.ipynb"


def test_example_notebook_runs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("127.77.60.1:" in str(o) for o in outputs), "the bootstrap address was shown"
    charts = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(charts) == 2, "the chart was drawn from collect's rows and from the index"
    assert any("'stored': 10" in str(o) for o in outputs), "run's summary was shown"
