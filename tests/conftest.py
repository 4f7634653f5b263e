"""Shared test configuration: fixture plug-ins and the guard against unexpected ERROR logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from app.pipeline import scan

# servers first: core builds on it.
pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.audio",
    "tests.fixtures.core",
    "tests.fixtures.media",
    "tests.fixtures.models",
    "tests.fixtures.chat",
    "tests.fixtures.postgres",
    "tests.fixtures.temporal",
]


@pytest.fixture(autouse=True)
def fail_on_unexpected_error_log(
    caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> Iterator[None]:
    """Fail a test that logs an ERROR it did not declare with ``@pytest.mark.allow_error_log``."""
    yield
    if request.node.get_closest_marker("allow_error_log"):
        return
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    if errors:
        pytest.fail("unexpected ERROR log: " + "; ".join(r.getMessage() for r in errors))


@pytest.fixture(autouse=True)
def no_early_stretches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keyframe scan as below four cores, with no stretch started during the keyframe
    pass (``scan.EARLY_START``), whatever the machine: the decodes a test spies on do not
    depend on its cores. The tests of early stretches turn them on."""
    monkeypatch.setattr(scan, "EARLY_START", False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_error_log: the test expects ERROR records to be logged"
    )
