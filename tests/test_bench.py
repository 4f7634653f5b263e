"""The benchmark scripts import: a rename in ``app`` that breaks one fails here, not on the
GPU machine they are carried to."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

SCRIPTS = sorted(p.stem for p in (Path(__file__).parents[1] / "bench").glob("*.py"))


@pytest.mark.parametrize("name", [s for s in SCRIPTS if s != "__init__"])
def test_bench_script_imports(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert module.__doc__, f"bench/{name}.py says what it measures in its docstring"
