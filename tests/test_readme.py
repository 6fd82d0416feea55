"""The README's examples work as written: its Python blocks run in order in one session,
and its shell commands need nothing but make and the project's .venv (no uv on PATH)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.M | re.S)


def run_blocks(code_blocks, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write files (bg.json)
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for code in code_blocks:
            exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our README
    return namespace


def test_shell_commands_need_no_uv_on_path():
    commands = [line.strip() for block in blocks("bash") for line in block.splitlines()]
    commands = [c for c in commands if c and not c.startswith("--")]
    starts = ("make ", ".venv/bin/", ".tools/bin/")
    assert commands and all(c.startswith(starts) for c in commands), commands
    text = README.read_text()
    assert not re.search(r"`uv run ", text)


def test_python_blocks_without_sampling_run(tmp_path, monkeypatch):
    fast = [b for b in blocks("python") if "bayes" not in b]
    assert fast
    ns = run_blocks(fast, tmp_path, monkeypatch)
    assert ns["clv"].notna().all() and (tmp_path / "bg.json").is_file()


@pytest.mark.slow
def test_all_python_blocks_run_in_order(tmp_path, monkeypatch):
    ns = run_blocks(blocks("python"), tmp_path, monkeypatch)
    assert ns["rfm_with_segment"]["segment"].nunique() == 3
    assert ns["h"].segment_params().shape == (3 * 4, 4)
    assert ns["m"].convergence_.passed
