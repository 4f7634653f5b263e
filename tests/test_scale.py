"""The temporal backend as real processes: an API process (``python -m app serve``) and worker
processes (``python -m app worker``) over a PostgreSQL server and a Temporal dev server that
the tests start. Workers are killed with SIGKILL, servers restarted, in the middle of jobs;
core must still get each description once, in order, then one status."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from temporalio.client import Client

from app.service.backends.temporal_workflow import workflow_id
from tests.fixtures.chat import SERVED, ChatEndpoint
from tests.fixtures.core import RecordingCore
from tests.fixtures.media import MadeVideo, make_coded_video
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.servers import free_port, wait_until
from tests.fixtures.temporal import TemporalServer, WorkerProcess
from tests.test_service_process import COLOURS, ServiceProcess, _check_delivered_once

#: Seconds without a heartbeat before a worker is taken for lost (test 1).
HEARTBEAT_TIMEOUT = 5.0
#: Longest a job may run: far above the heartbeat timeout, so a takeover cannot be a timeout.
JOB_TIMEOUT = 600.0


@dataclass
class Cluster:
    """Factory of the roles' processes, on one database, one Temporal and one core."""

    env: dict[str, str]
    root: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def api(self) -> ServiceProcess:
        api = ServiceProcess(self.env, self.root / "api.log")
        self.processes.append(api.process)
        return api.wait_ready()

    def worker(self, name: str, **settings: str) -> WorkerProcess:
        env = {**self.env, **{f"DESCRIBER_{k.upper()}": v for k, v in settings.items()}}
        worker = WorkerProcess(env, self.root / f"worker-{name}.log")
        self.processes.append(worker.process)
        return worker


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> MadeVideo:
    """48 s of 30 colour scenes: seconds of work for the tiny model, time to interrupt it."""
    path = tmp_path_factory.mktemp("media") / "film.mp4"
    return make_coded_video(path, [(COLOURS[i % 4], 40) for i in range(30)])


@pytest.fixture
def cluster(
    tmp_path: Path,
    postgres_url: str,
    temporal_server: TemporalServer,
    recording_core: RecordingCore,
) -> Iterator[Cluster]:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONFAULTHANDLER": "1",
        "DESCRIBER_BACKEND": "temporal",
        "DESCRIBER_DATABASE_URL": postgres_url,
        "DESCRIBER_TEMPORAL_ADDRESS": temporal_server.address,
        "DESCRIBER_TEMPORAL_TASK_QUEUE": f"test-{tmp_path.name}",
        "DESCRIBER_TEMPORAL_RETRY_INITIAL": "0.2",
        "DESCRIBER_TEMPORAL_RETRY_MAX": "1",
        "DESCRIBER_JOB_TIMEOUT": str(JOB_TIMEOUT),
        # Read by the API: a job's limits are fixed when it is submitted.
        "DESCRIBER_TEMPORAL_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        "DESCRIBER_QUEUE_POLL_INTERVAL": "0.5",
        "DESCRIBER_PORT": str(free_port()),
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
    made = Cluster(env, tmp_path)
    try:
        yield made
    finally:
        for process in made.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def chat_model(endpoint: ChatEndpoint) -> dict[str, str]:
    """Worker settings for a captioner served by ``endpoint``, each caption unlike the last."""
    endpoint.answer = lambda n: f"Scene {n}: " + " ".join(f"w{n}x{k}" for k in range(4))
    return {"api_base": endpoint.url, "model": SERVED, "novelty_threshold": "1.0"}


def wait_for_heartbeat(address: str, job_id: str, timeout: float) -> int:
    """The scene index that the running activity of the job last heartbeated, once Temporal
    holds one (looked up twice a second: each look is a round trip to the server)."""

    async def look() -> int:
        client = await Client.connect(address)
        handle = client.get_workflow_handle(workflow_id(job_id))
        async with asyncio.timeout(timeout):
            while True:
                pending = (await handle.describe()).raw_description.pending_activities
                if pending and pending[0].HasField("heartbeat_details"):
                    details = await client.data_converter.decode(
                        pending[0].heartbeat_details.payloads
                    )
                    if details:
                        return int(details[0])
                await asyncio.sleep(0.5)

    return asyncio.run(look())


def _serve(file_server: tuple[str, Path], film: MadeVideo, count: int) -> list[str]:
    """``count`` URLs of the film (distinct URLs: distinct jobs)."""
    base, root = file_server
    urls = []
    for n in range(count):
        (root / f"film{n}.mp4").write_bytes(film.path.read_bytes())
        urls.append(f"{base}/film{n}.mp4")
    return urls


def test_a_worker_killed_mid_film_its_jobs_go_on_on_the_other_and_core_gets_each_once(
    cluster: Cluster,
    recording_core: RecordingCore,
    file_server: tuple[str, Path],
    film: MadeVideo,
    chat_endpoint: ChatEndpoint,
) -> None:
    # A model of fixed speed: 30 scenes take 15 s, far longer than it takes to kill a worker.
    chat_endpoint.latency = 0.5
    # Three jobs at once per worker: the survivor has room for what the lost one ran.
    settings = {
        **chat_model(chat_endpoint),
        "workers": "3",
    }
    workers = [cluster.worker(name, **settings) for name in "ab"]
    api = cluster.api()
    for worker in workers:
        worker.wait_ready()
    jobs = [api.submit(url) for url in _serve(file_server, film, 3)]
    victim_job = jobs[0]
    recording_core.wait_for(lambda core: len(core.descriptions(victim_job)) >= 2, timeout=120)
    # Temporal holds a heartbeat naming a stored description: where a takeover goes on.
    noted = wait_for_heartbeat(cluster.env["DESCRIBER_TEMPORAL_ADDRESS"], victim_job, 60)
    victim = next(w for w in workers if w.started(victim_job, 1))
    survivor = next(w for w in workers if w is not victim)

    victim.kill()  # lost for good: never started again
    killed = time.monotonic()
    wait_until(
        lambda: survivor.started(victim_job, 2),
        HEARTBEAT_TIMEOUT + 30,
        "the surviving worker to take the job over",
    )
    taken_over = time.monotonic() - killed
    # Noticed by the missing heartbeats, not at the job's timeout.
    assert taken_over < HEARTBEAT_TIMEOUT + 30 < JOB_TIMEOUT
    resumed = re.search(rf"job {victim_job}: run 2 goes on after scene (\d+)", survivor.logs())
    assert resumed is not None and int(resumed[1]) >= noted

    for job_id in jobs:
        job = api.wait_done(job_id)
        recording_core.wait_for(lambda core, j=job_id: core.final(j) is not None)  # type: ignore[misc]
        _check_delivered_once(recording_core, job_id, job)
    assert api.job(victim_job)["attempts"] == 2
    api.terminate()


def _held_job(
    cluster: Cluster,
    core: RecordingCore,
    chat: ChatEndpoint,
    file_server: tuple[str, Path],
    film: MadeVideo,
) -> tuple[WorkerProcess, ServiceProcess, str]:
    """One worker, the API and one job that core has 2 descriptions of, held in its middle:
    the model (a chat endpoint) answers only when the test hands out permits (``chat.gate``)."""
    chat.gate = threading.Semaphore(0)
    worker = cluster.worker("a", **chat_model(chat)).wait_ready()
    api = cluster.api()
    (job_id,) = [api.submit(url) for url in _serve(file_server, film, 1)]
    chat.gate.release(2)
    core.wait_for(lambda held: len(held.descriptions(job_id)) >= 2, timeout=120)
    return worker, api, job_id


def test_temporal_and_postgres_restarted_mid_job_lose_nothing_and_send_nothing_twice(
    cluster: Cluster,
    recording_core: RecordingCore,
    file_server: tuple[str, Path],
    film: MadeVideo,
    chat_endpoint: ChatEndpoint,
    temporal_server: TemporalServer,
    postgres_server: PostgresServer,
) -> None:
    worker, api, job_id = _held_job(cluster, recording_core, chat_endpoint, file_server, film)
    temporal_server.kill()
    temporal_server.start()
    assert chat_endpoint.gate is not None
    chat_endpoint.gate.release(2)
    recording_core.wait_for(lambda core: len(core.descriptions(job_id)) >= 4, timeout=120)
    postgres_server.stop("immediate")  # as if it crashed
    postgres_server.start()
    chat_endpoint.gate.release(1_000)

    job = api.wait_done(job_id)
    recording_core.wait_for(lambda core: core.final(job_id) is not None)
    _check_delivered_once(recording_core, job_id, job)
    assert len(job["descriptions"]) > 4
    assert worker.process.poll() is None
    api.terminate()


def test_a_cancelled_job_stops_at_a_safe_point_and_ends_not_processed(
    cluster: Cluster,
    recording_core: RecordingCore,
    file_server: tuple[str, Path],
    film: MadeVideo,
    chat_endpoint: ChatEndpoint,
    temporal_server: TemporalServer,
) -> None:
    worker, api, job_id = _held_job(cluster, recording_core, chat_endpoint, file_server, film)

    async def cancel() -> None:
        client = await Client.connect(temporal_server.address)
        await client.get_workflow_handle(workflow_id(job_id)).cancel()

    asyncio.run(cancel())
    # The pipeline waits on the model: let it go on once the job knows, to its safe point.
    wait_until(lambda: "stopping at the next safe point" in worker.logs(), 60, "the cancel")
    assert chat_endpoint.gate is not None
    chat_endpoint.gate.release(1_000)

    job = api.wait_done(job_id)
    assert (job["status"], job["reason"]) == ("not_processed", "the job was cancelled")
    final = recording_core.wait_final(job_id)
    assert final["status"] == "NOT_PROCESSED"
    assert core_scenes(recording_core, job_id) == [d["scene_index"] for d in job["descriptions"]]
    assert len(job["descriptions"]) < len(film.cut_frames)  # it did not run to the end

    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(60) == 0
    api.terminate()


def core_scenes(core: RecordingCore, job_id: str) -> list[int]:
    """The scene indexes of the descriptions core holds for a job, in the order received."""
    return [d["scene_index"] for d in core.descriptions(job_id)]
