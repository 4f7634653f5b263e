"""scripts/system-packages.sh and scripts/torch.sh, run against stand-ins (apt-get, dpkg and id
on PATH; the venv's Python)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_apt_waits_for_a_held_dpkg_lock_instead_of_failing(tmp_path: Path) -> None:
    calls = tmp_path / "apt-calls"
    _tool(tmp_path, "id", "echo 0")
    _tool(tmp_path, "dpkg", "exit 1")  # every package is missing
    _tool(tmp_path, "apt-get", f'echo "$*" >> {calls}')
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "APT_LOCK_TIMEOUT": "42"}
    subprocess.run(
        ["bash", "scripts/system-packages.sh", "ffmpeg", "espeak-ng"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=60,
    )
    update, install = calls.read_text().splitlines()
    assert update.startswith("-o DPkg::Lock::Timeout=42 update")
    assert install.startswith("-o DPkg::Lock::Timeout=42 install")
    assert install.endswith("ffmpeg espeak-ng")


#: A stand-in for the venv's Python as scripts/torch.sh uses it: ``import torch`` prints
#: $TORCH (none when empty); torchvision's operator runs once the file ``works`` exists, which
#: a pip install creates unless $BROKEN is set; ``-m pip`` calls are recorded in ``calls``.
FAKE_PYTHON = """\
here=$(dirname "$0")
case "$1 $2" in
    "-m pip") echo "$*" >> "$here/calls"
        [ "$3" = install ] && [ -z "$BROKEN" ] && touch "$here/works"; exit 0;;
    *torch.__version__*) [ -n "$TORCH" ] && echo "$TORCH";;
    *) [ -e "$here/works" ] && exit 0
        echo "RuntimeError: operator torchvision::nms does not exist" >&2; exit 1;;
esac
"""


def run_torch_sh(
    tmp_path: Path, torch: str = "", works: bool = False, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run scripts/torch.sh against the stand-in Python; its result and the pip calls."""
    _tool(tmp_path, "python", FAKE_PYTHON)
    if works:
        (tmp_path / "works").touch()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TORCH", "BROKEN"))}
    proc = subprocess.run(
        ["bash", "scripts/torch.sh", str(tmp_path / "python")],
        cwd=ROOT,
        env={**clean, "TORCH": torch, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    calls = tmp_path / "calls"
    return proc, calls.read_text().splitlines() if calls.exists() else []


@pytest.mark.parametrize(
    ("env", "installed"),
    [
        ({}, "torch==2.14.1 torchvision==0.29.1"),
        (
            {"TORCH_VERSION": "2.13.0", "TORCH_INDEX_URL": "https://example.org/whl/cpu"},
            "torch==2.13.0 torchvision==0.28.0 --index-url https://example.org/whl/cpu",
        ),
        ({"TORCHVISION_VERSION": "none"}, "torch==2.14.1"),
    ],
)
def test_without_torch_installs_torch_and_its_torchvision_as_a_pair(
    tmp_path: Path, env: dict[str, str], installed: str
) -> None:
    proc, calls = run_torch_sh(tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert calls == [f"-m pip install --quiet {installed}"]


def test_a_torch_present_is_kept_with_a_torchvision_that_works(tmp_path: Path) -> None:
    proc, calls = run_torch_sh(tmp_path, torch="2.9.1+cu128", works=True)
    assert (proc.returncode, calls) == (0, [])


def test_a_torch_present_gets_the_torchvision_made_for_it_with_torch_pinned(
    tmp_path: Path,
) -> None:
    proc, calls = run_torch_sh(tmp_path, torch="2.9.1+cu128")
    assert proc.returncode == 0, proc.stderr
    assert calls == ["-m pip install --quiet torch==2.9.1+cu128 torchvision==0.24.1"]
    assert "keeping torch 2.9.1+cu128" in proc.stderr


def test_a_torchvision_that_does_not_run_is_removed_and_the_install_fails_saying_why(
    tmp_path: Path,
) -> None:
    proc, calls = run_torch_sh(tmp_path, torch="2.13.0+cpu", BROKEN="1")
    assert proc.returncode == 1
    assert calls == [
        "-m pip install --quiet torch==2.13.0+cpu torchvision==0.28.0",
        "-m pip uninstall --quiet --yes torchvision",
    ]
    assert "torchvision does not work beside torch 2.13.0+cpu" in proc.stderr
    assert "operator torchvision::nms does not exist" in proc.stderr
    assert "TORCHVISION_VERSION=none" in proc.stderr


def test_torchvision_none_leaves_a_torch_present_alone(tmp_path: Path) -> None:
    proc, calls = run_torch_sh(tmp_path, torch="2.13.0+cpu", TORCHVISION_VERSION="none")
    assert (proc.returncode, calls) == (0, [])
