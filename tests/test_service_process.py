"""The service as a real process (``python -m app.service``) with a real (tiny) model: killed with
SIGKILL or stopped with SIGTERM in the middle of a job, then started again on the same store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.service.jobs import JobStatus
from tests.fixtures.core import RecordingCore
from tests.fixtures.media import MadeVideo, make_coded_video
from tests.fixtures.servers import free_port, wait_until

#: The statuses a job ends in.
FINAL = tuple(status.value for status in JobStatus if status.final)

COLOURS = ("red", "green", "blue", "yellow")


class ServiceProcess:
    """``python -m app.service`` with settings from the environment, logging to a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.url = f"http://127.0.0.1:{env['DESCRIBER_PORT']}"
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.service"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).parent.parent,
            )
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def wait_ready(self, timeout: float = 180) -> ServiceProcess:
        def ready() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"the service exited ({self.process.returncode}):\n{self.logs()}")
            try:
                return self.http.get("/readyz").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout, "the service process to be ready")
        return self

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def submit(self, url: str) -> str:
        response = self.http.post("/process", json={"url": url})
        assert response.status_code == 202, response.text
        job_id: str = response.json()["job_id"]
        return job_id

    def job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.http.get(f"/jobs/{job_id}").json()
        return job

    def wait_done(self, job_id: str, timeout: float = 180) -> dict[str, Any]:
        job: dict[str, Any] = wait_until(
            lambda: (j := self.job(job_id))["status"] in FINAL and j, timeout, "the job to finish"
        )
        return job

    def stop(self, sig: signal.Signals, timeout: float = 120) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            # SIGABRT makes faulthandler write every thread's stack to the log.
            self.process.send_signal(signal.SIGABRT)
            self.process.wait(30)
            pytest.fail(f"the service did not stop within {timeout} s:\n{self.logs()}")
        finally:
            self.http.close()

    def terminate(self) -> None:
        """SIGTERM: the service shuts down cleanly (uvicorn then re-raises the signal)."""
        assert self.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in self.logs()


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> MadeVideo:
    """48 s of 30 colour scenes (about 5 s of work for the tiny model): time to interrupt it."""
    path = tmp_path_factory.mktemp("media") / "long.mp4"
    return make_coded_video(path, [(COLOURS[i % 4], 40) for i in range(30)])


@pytest.fixture
def start_service(
    tmp_path: Path, colour_blip_dir: Path, recording_core: RecordingCore
) -> Iterator[Callable[[], ServiceProcess]]:
    """Factory: start the service process (same store, same core each time); killed after."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONFAULTHANDLER": "1",
        "DESCRIBER_PORT": str(free_port()),
        "DESCRIBER_DB_PATH": str(tmp_path / "store.sqlite3"),
        "DESCRIBER_MODEL": str(colour_blip_dir),
        "DESCRIBER_DEVICE": "cpu",
        "DESCRIBER_LOCAL_FILES_ONLY": "true",
        "DESCRIBER_CORE_URL": recording_core.url,
        "DESCRIBER_ALLOW_PRIVATE_URLS": "true",
        "DESCRIBER_CALLBACK_BACKOFF_INITIAL": "0.05",
        "DESCRIBER_CALLBACK_BACKOFF_MAX": "0.5",
        "DESCRIBER_MIN_GAP": "1.0",
        "DESCRIBER_FRAME_OFFSET": "0.5",
        "DESCRIBER_BATCH_SIZE": "1",
    }
    processes: list[ServiceProcess] = []

    def start() -> ServiceProcess:
        service = ServiceProcess(env, tmp_path / "service.log")
        processes.append(service)  # before the wait: one that never gets ready is killed too
        return service.wait_ready()

    try:
        yield start
    finally:
        for service in processes:
            if service.process.poll() is None:
                service.process.kill()
                service.process.wait()


def _check_delivered_once(core: RecordingCore, job_id: str, job: dict[str, Any]) -> None:
    """Core holds each description of the job once, in order, then the final status."""
    assert job["status"] == "processed"
    held = core.descriptions(job_id)
    assert held == job["descriptions"]
    scenes = [d["scene_index"] for d in held]
    assert scenes == sorted(set(scenes))
    final = core.wait_final(job_id)
    assert final["status"] == "PROCESSED"
    assert final["descriptions"] == len(held)
    # A callback sent just before the crash may come again, but only under its own event id.
    assert {r.event_id for r in core.duplicates} <= set(core.events)


def test_killed_mid_job_the_restarted_service_finishes_it_and_core_gets_each_description_once(
    start_service: Callable[[], ServiceProcess],
    recording_core: RecordingCore,
    file_server: tuple[str, Path],
    long_video: MadeVideo,
) -> None:
    base, root = file_server
    (root / "long.mp4").write_bytes(long_video.path.read_bytes())
    first = start_service()
    job_id = first.submit(f"{base}/long.mp4")
    recording_core.wait_for(lambda core: len(core.descriptions(job_id)) >= 2, timeout=120)

    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    before = len(recording_core.descriptions(job_id))

    second = start_service()
    job = second.wait_done(job_id)
    assert job["attempts"] == 2, "the job had finished before the kill: make it longer"
    recording_core.wait_for(lambda core: core.final(job_id) is not None)
    assert len(job["descriptions"]) > before
    _check_delivered_once(recording_core, job_id, job)
    second.terminate()


def test_sigterm_stops_at_a_safe_point_and_the_next_start_resumes_the_job(
    start_service: Callable[[], ServiceProcess],
    recording_core: RecordingCore,
    file_server: tuple[str, Path],
    long_video: MadeVideo,
) -> None:
    base, root = file_server
    (root / "long.mp4").write_bytes(long_video.path.read_bytes())
    first = start_service()
    job_id = first.submit(f"{base}/long.mp4")
    recording_core.wait_for(lambda core: len(core.descriptions(job_id)) >= 2, timeout=120)

    first.terminate()
    assert "interrupted at a safe point" in first.logs()
    assert recording_core.final(job_id) is None

    second = start_service()
    job = second.wait_done(job_id)
    assert job["attempts"] == 2
    recording_core.wait_for(lambda core: core.final(job_id) is not None)
    _check_delivered_once(recording_core, job_id, job)
    second.terminate()


def test_with_its_stderr_pipe_closed_the_service_still_answers_and_stops(
    tmp_path: Path, tiny_blip_dir: Path
) -> None:
    # ``python -m app serve 2>&1 | head -3``: once head has its three lines and exits, every
    # write to the pipe fails. A progress bar drawn then (loading the model) hung the process.
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONFAULTHANDLER": "1",
        "DESCRIBER_PORT": str(port),
        "DESCRIBER_DB_PATH": str(tmp_path / "store.sqlite3"),
        "DESCRIBER_MODEL": str(tiny_blip_dir),
        "DESCRIBER_DEVICE": "cpu",
        "DESCRIBER_LOCAL_FILES_ONLY": "true",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert process.stdout is not None
        head = [process.stdout.readline() for _ in range(3)]
        assert all(head), head
        process.stdout.close()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

            def ready() -> bool:
                if process.poll() is not None:
                    pytest.fail(f"the service exited ({process.returncode})")
                try:
                    return http.get("/readyz").status_code == 200
                except httpx.TransportError:
                    return False

            # Ready means the model was loaded after the pipe closed.
            wait_until(ready, 180, "the service to load its model with its stderr closed")
            assert http.get("/healthz").status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
