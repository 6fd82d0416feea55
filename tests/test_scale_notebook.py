"""notebooks/05-scale.ipynb runs end to end at a small size (papermill), and says so."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05-scale.ipynb"
SMALL = dict(n_transactions=60_000, n_customers=6_000, fit_customers=60_000, seed=1)


def _this_python_kernel():
    """Run the kernel with this interpreter, whatever kernels the machine has registered."""
    from jupyter_client.manager import KernelManager

    class ThisPython(KernelManager):
        def format_kernel_cmd(self, extra_arguments=None):
            return [sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file,
                    *(extra_arguments or [])]  # fmt: skip

    return ThisPython


@pytest.mark.slow
def test_scale_notebook_runs_small(tmp_path):
    pm = pytest.importorskip("papermill")
    out = tmp_path / "05-scale.ipynb"
    nb = pm.execute_notebook(
        str(NOTEBOOK), str(out), parameters={**SMALL, "workdir": str(tmp_path / "data")},
        kernel_name="python3", cwd=str(tmp_path), progress_bar=False,
        kernel_manager_class=_this_python_kernel(),
    )  # fmt: skip
    text = "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/markdown", ""))
        for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )  # fmt: skip
    assert "the same RFM frame" in text
    assert "A cluster of **2 workers** reproduced every number" in text
    figures = sum("image/png" in o.get("data", {}) for c in nb.cells
                  for o in c.get("outputs", []))  # fmt: skip
    assert figures >= 3
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
