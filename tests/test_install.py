"""scripts/system-packages.sh, run against stand-ins for apt-get, dpkg and id on PATH."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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
