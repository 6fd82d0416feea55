"""Shared fixtures: the CDNOW data built by our own pipeline, and the reference package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cdnow_rfm():
    """CDNOW 1/10 sample, weekly RFM through 1997-09-30 (the papers' calibration data)."""
    from clvmodels import datasets
    from clvmodels.rfm import rfm_summary

    tx = datasets.cdnow_transactions(sample=True)
    return rfm_summary(tx, customer="customer_id", date="date", amount="amount",
                       observation_end="1997-09-30", unit="W")


@pytest.fixture(scope="session")
def lifetimes():
    """The reference implementation (imports pkg_resources, which warns on import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lifetimes as lt
    return lt


@pytest.fixture
def installed_wheel(tmp_path):
    """The project's wheel, built and installed (no dependencies) into a fresh venv.

    The venv gets the project's third-party packages through a ``.pth`` line naming the
    project's site-packages directory; ``.pth`` files inside that directory (such as the
    editable install's pointer to ``src/``) are not processed, so ``clvmodels`` can only
    come from the installed wheel. uv is the one on PATH, or the copy ``make`` bootstraps
    into ``.tools/``. Returns ``venv``, ``python``, ``purelib`` and ``env`` (for running it).
    """
    uv = shutil.which("uv") or next(
        (str(p) for p in [REPO / ".tools" / "bin" / "uv"] if p.is_file()), None
    )
    if uv is None:
        pytest.skip("uv is not available (neither on PATH nor in .tools/)")
    dist = tmp_path / "dist"
    subprocess.run([uv, "build", "--wheel", "-q", "-o", str(dist)], cwd=REPO, check=True)
    (wheel,) = dist.glob("clvmodels-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "-q", "--offline", "--no-deps", "--python", str(python), wheel],
        check=True,
    )
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "zz_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return SimpleNamespace(venv=venv, python=python, purelib=purelib, env=env)
