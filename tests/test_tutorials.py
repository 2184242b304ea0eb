"""The tutorials run from top to bottom (they need the public data)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = sorted((Path(__file__).parents[1] / "tutorials").glob("*.ipynb"))


# tutorials that read the public data (the fixture that skips without it); the others simulate their own
NEEDS_DATA = {
    "01_hawc_crab.ipynb": "hawc_data",
    "03_galactic_plane.ipynb": "catalogs_dir",
    "05_nn_prior.ipynb": "catalogs_dir",
    "07_your_own_data.ipynb": "hal_response",
    "08_fermi_galactic_centre.ipynb": "fermi_gc",
}


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.data) if p.name in NEEDS_DATA else p for p in TUTORIALS],
    ids=[p.name for p in TUTORIALS],
)
def test_tutorial_executes(path, request, tmp_path):
    if path.name in NEEDS_DATA:
        request.getfixturevalue(NEEDS_DATA[path.name])
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
