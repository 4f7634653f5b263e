"""The service end to end, in this process: a real uvicorn on a loopback port, videos on a real
file server, core as a real recording server, a scripted captioner instead of a model."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import av
import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image

from app.api import create_app
from app.config import Settings
from app.models import CaptionOptions, CaptionRequest, load_captioner
from app.pipeline.novelty import NoveltyScorer
from app.service import media as media_module
from app.service.jobs import JobRequest, JobStatus, OutboxEvent, Submission
from app.service.store import SqliteJobStore
from tests.fixtures.audio import decode, loud
from tests.fixtures.chat import SERVED, ChatEndpoint
from tests.fixtures.core import RecordingCore
from tests.fixtures.media import MadeVideo, make_coded_video, nvdec_usable
from tests.fixtures.models import ScriptedCaptioner
from tests.fixtures.piper import HOP, make_tiny_piper_voice
from tests.fixtures.piper import RATE as PIPER_RATE
from tests.fixtures.servers import QuietHandler, TrickleServer, serving, wait_until

SECRET = "s3cret-shared-with-core"
FINAL = ("processed", "not_processed")


class WordScorer:
    """A cheap novelty scorer: the share of words two captions have in common."""

    def similarity(self, previous: str, current: str) -> float:
        a, b = set(previous.split()), set(current.split())
        return len(a & b) / max(1, len(a | b))


def service_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test service: its own store, fast retries, private URLs allowed."""
    values: dict[str, Any] = {
        "db_path": tmp_path / "service.sqlite3",
        "media_dir": tmp_path / "media",
        "allow_private_urls": True,
        "callback_backoff_initial": 0.05,
        "callback_backoff_max": 0.2,
        "queue_poll_interval": 0.5,
        "novelty_threshold": 0.9,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def plain(text: str) -> str:
    """A caption without its narration style: "A red scene." → "a red scene"."""
    return text.lower().rstrip(".")


class GatedCaptioner(ScriptedCaptioner):
    """Names colours like ScriptedCaptioner, but each call waits until the gate opens."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def caption(
        self, images: Sequence[Image.Image], requests: Sequence[CaptionRequest] | None = None
    ) -> list[str]:
        self.entered.set()
        if not self.gate.wait(timeout=60):
            raise RuntimeError("the test never opened the gate")
        return super().caption(images, requests)


class MidJobCaptioner(GatedCaptioner, logging.Handler):
    """Like GatedCaptioner for the first call; later calls also wait until the worker logs
    that it stops the job (attach it to the worker's logger), so that the job is stopped
    mid-way however far the scan has run ahead of the captioner."""

    def __init__(self) -> None:
        GatedCaptioner.__init__(self)
        logging.Handler.__init__(self)
        self.stopping = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "stopping at the next safe point" in record.getMessage():
            self.stopping.set()

    def caption(
        self, images: Sequence[Image.Image], requests: Sequence[CaptionRequest] | None = None
    ) -> list[str]:
        if self.entered.is_set() and not self.stopping.wait(timeout=60):
            raise RuntimeError("the job was never stopped")
        return super().caption(images, requests)


class OverrunCaptioner(ScriptedCaptioner, logging.Handler):
    """A model that runs past a job's time limit: each job's captioning waits until the
    worker logs that it stops the job (attach it to the worker's logger)."""

    def __init__(self) -> None:
        ScriptedCaptioner.__init__(self)
        logging.Handler.__init__(self)
        self.stopping = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "started (run" in message:
            self.stopping.clear()
        elif "stopping at the next safe point" in message:
            self.stopping.set()

    def caption(
        self, images: Sequence[Image.Image], requests: Sequence[CaptionRequest] | None = None
    ) -> list[str]:
        if not self.stopping.wait(timeout=60):
            raise RuntimeError("the job was never stopped")
        return super().caption(images, requests)


class LiveService:
    """The app under a real uvicorn in a thread, on a socket bound before it starts."""

    def __init__(
        self,
        settings: Settings,
        captioner: Any,
        scorer: NoveltyScorer | None = None,
    ) -> None:
        self.settings = settings
        self.app = create_app(settings, captioner, scorer=scorer or WordScorer())
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(128)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_config=None, lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        token = settings.api_token
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        self.http = httpx.Client(base_url=self.url, timeout=30, headers=headers)

    def start(self) -> LiveService:
        self._thread.start()
        wait_until(
            lambda: self.http.get("/readyz").status_code == 200, what="the service to be ready"
        )
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the service did not shut down"
        self.http.close()
        self._socket.close()

    def submit(self, url: str, subtitles: str | None = None, **options: Any) -> str:
        body = {"url": url, "subtitles": subtitles, **options}
        response = self.http.post("/process", json=body)
        assert response.status_code == 202, response.text
        job_id: str = response.json()["job_id"]
        return job_id

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.http.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job

    def wait_done(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        job: dict[str, Any] = wait_until(
            lambda: (j := self.job(job_id))["status"] in FINAL and j,
            timeout,
            f"job {job_id} to finish",
        )
        return job


@pytest.fixture
def live_service(tmp_path: Path) -> Iterator[Callable[..., LiveService]]:
    """Factory: ``live_service(captioner, **settings)`` → a started LiveService; stopped after."""
    services: list[LiveService] = []

    def start(captioner: Any = None, **overrides: Any) -> LiveService:
        settings = service_settings(tmp_path, **overrides)
        service = LiveService(settings, captioner or ScriptedCaptioner()).start()
        services.append(service)
        return service

    try:
        yield start
    finally:
        for service in services:
            if service._thread.is_alive():
                service.stop()


@pytest.fixture
def media(file_server: tuple[str, Path], six_scene_video: MadeVideo) -> tuple[str, Path]:
    """The file server, holding ``six.mp4`` (20 s, six colour scenes) and ``short.mp4`` (4 s)."""
    base, root = file_server
    shutil.copy(six_scene_video.path, root / "six.mp4")
    make_coded_video(root / "short.mp4", [("red", 50), ("blue", 50)])
    return base, root


def test_happy_path_delivers_each_description_in_order_then_processed(
    live_service: Callable[..., LiveService],
    core_factory: Callable[..., RecordingCore],
    media: tuple[str, Path],
) -> None:
    core = core_factory(secret=SECRET)
    service = live_service(core_url=core.url, callback_secret=SECRET)
    base, _ = media

    job_id = service.submit(f"{base}/six.mp4")

    final = core.wait_final(job_id)
    assert final["status"] == "PROCESSED"
    assert final["reason"] is None
    job = service.wait_done(job_id)
    assert job["status"] == "processed"
    progress = job["progress"]
    assert (progress["stage"], progress["fraction"], progress["scenes_found"]) == ("done", 1.0, 6)
    # Every scene is accounted for: no pause (none here: no speech), similar, or captioned.
    assert progress["scenes_without_pause"] == 0
    assert progress["scenes_similar"] + progress["scenes_captioned"] == 6
    delivered = core.descriptions(job_id)
    assert len(delivered) == progress["scenes_captioned"] - progress["captions_dropped"]
    assert len(delivered) >= 4
    assert delivered == job["descriptions"]
    assert final["descriptions"] == len(delivered)
    starts = [d["start"] for d in delivered]
    assert starts == sorted(starts)
    assert [plain(d["text"]) for d in delivered][:4] == [
        "a red scene",
        "a green scene",
        "a blue scene",
        "a yellow scene",
    ]
    # The status came last, every event once, each signed and to its documented path.
    events = [r for r in core.requests if r.json["job_id"] == job_id]
    assert events[-1].json["type"] == "status"
    assert events[-1].path == f"/jobs/{job_id}/status"
    assert {r.path for r in events[:-1]} == {f"/jobs/{job_id}/descriptions"}
    assert not core.duplicates
    assert all(r.status == 200 for r in events)

    vtt = service.http.get(f"/jobs/{job_id}/descriptions", params={"format": "vtt"})
    assert vtt.headers["content-type"].startswith("text/vtt")
    assert vtt.text.startswith("WEBVTT") and "red scene" in vtt.text
    srt = service.http.get(f"/jobs/{job_id}/descriptions", params={"format": "srt"})
    assert srt.text.startswith("1\n00:00:")
    dapt = service.http.get(f"/jobs/{job_id}/descriptions", params={"format": "dapt"})
    assert dapt.headers["content-type"].startswith("application/ttml+xml")
    assert 'xml:lang="en"' in dapt.text and "red scene" in dapt.text
    as_json = service.http.get(f"/jobs/{job_id}/descriptions")
    assert json.loads(as_json.text) == delivered
    bad_format = service.http.get(f"/jobs/{job_id}/descriptions", params={"format": "doc"})
    assert bad_format.status_code == 422 and "format" in bad_format.json()["detail"]
    assert service.http.get("/jobs/nope").status_code == 404

    core.wait_for(lambda c: len(c.events) == len(delivered) + 1)
    metrics = service.http.get("/metrics").text
    assert 'describer_jobs{status="processed"} 1.0' in metrics
    assert "describer_queue_depth 0.0" in metrics
    assert f'describer_callbacks_total{{result="delivered"}} {len(delivered) + 1}.0' in metrics
    assert 'describer_stage_duration_seconds_count{stage="scanning"} 1.0' in metrics
    for outcome in ("without_pause", "similar", "captioned"):
        count = progress[f"scenes_{outcome}"]
        assert f'describer_scenes_total{{outcome="{outcome}"}} {count}.0' in metrics
    assert f"describer_captions_dropped_total {progress['captions_dropped']}.0" in metrics


def test_a_service_that_scans_in_worker_processes_describes_what_one_process_does(
    live_service: Callable[..., LiveService],
    media: tuple[str, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    base, _ = media
    found = []
    for workers in (1, 2):
        # 20 s in four chunks of 5 s, for two workers.
        service = live_service(scan_workers=workers, scan_chunk_length=5.0)
        with caplog.at_level(logging.INFO, logger="app.pipeline.chunks"):
            job = service.wait_done(service.submit(f"{base}/six.mp4"))
        assert ("4 chunks of 5 s in 2 worker processes" in caplog.text) == (workers == 2)
        assert job["status"] == "processed"
        assert job["progress"]["scenes_found"] == 6
        found.append([(d["scene_start"], d["frame_time"], d["text"]) for d in job["descriptions"]])
        service.stop()
    assert found[1] == found[0]
    assert len(found[0]) >= 4


def test_local_use_without_core_keeps_results_in_the_api(
    live_service: Callable[..., LiveService], media: tuple[str, Path]
) -> None:
    service = live_service()
    base, _ = media
    job = service.wait_done(service.submit(f"{base}/short.mp4"))
    assert job["status"] == "processed"
    assert [plain(d["text"]) for d in job["descriptions"]] == ["a red scene", "a blue scene"]


def test_duplicate_submit_returns_the_active_job_and_health_answers_during_a_job(
    live_service: Callable[..., LiveService], media: tuple[str, Path]
) -> None:
    captioner = GatedCaptioner()
    service = live_service(captioner)
    base, _ = media
    first = service.http.post("/process", json={"url": f"{base}/six.mp4"})
    assert first.status_code == 202 and first.json()["created"] is True
    assert captioner.entered.wait(30)

    again = service.http.post("/process", json={"url": f"{base}/six.mp4"})
    assert again.status_code == 202
    assert again.json() == {"job_id": first.json()["job_id"], "status": "running", "created": False}
    other = service.http.post(
        "/process", json={"url": f"{base}/six.mp4", "subtitles": f"{base}/none.srt"}
    )
    assert other.json()["job_id"] != first.json()["job_id"]

    # The pipeline thread is busy in the model: the event loop still answers at once.
    started = time.monotonic()
    assert service.http.get("/healthz").json() == {"status": "ok"}
    assert time.monotonic() - started < 0.5
    running = service.job(first.json()["job_id"])
    assert running["status"] == "running"
    assert running["progress"]["stage"] in ("scanning", "captioning")

    captioner.gate.set()
    assert service.wait_done(first.json()["job_id"])["status"] == "processed"
    # Once finished, the same URL is a new job.
    assert service.http.post("/process", json={"url": f"{base}/six.mp4"}).json()["created"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"url": "not a url"}, "url", "http and https"),
        ({"url": "ftp://example.org/film.mp4"}, "url", "ftp"),
        ({"url": ""}, "url", "http and https"),
        ({}, "url", "required"),
        ({"url": 42}, "url", "string"),
        ({"url": "https://example.org/a.mp4", "subtitles": "file:///etc/passwd"}, "subtitles", ""),
        ({"url": "http://10.1.2.3/film.mp4"}, "url", "private address"),
        ({"url": "http://127.0.0.1/film.mp4"}, "url", "loopback"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, "url", "metadata"),
        ({"url": "http://[::1]:8080/film.mp4"}, "url", "loopback"),
        ({"url": "http://[::127.0.0.1]/film.mp4"}, "url", "loopback"),
        ({"url": "http://[64:ff9b::169.254.169.254]/film.mp4"}, "url", "metadata"),
        ({"url": "http://[2002:a00:1::]/film.mp4"}, "url", "private"),
        ({"url": "http://0x7f.1/film.mp4"}, "url", "loopback"),
        ({"url": "http://0177.0.0.1/film.mp4"}, "url", "cannot be parsed"),
        ({"url": "http://\uff11\uff12\uff17.0.0.1/film.mp4"}, "url", "cannot be parsed"),
        ({"url": "http://example.org/a\r\nX-Injected: 1.mp4"}, "url", "cannot be parsed"),
        ({"url": "http://example.org/a\u0000.mp4"}, "url", "cannot be parsed"),
        (
            {"url": "https://example.org/a.mp4", "subtitles": "http://192.168.0.9/a.srt"},
            "subtitles",
            "private",
        ),
    ],
)
def test_invalid_requests_are_422_naming_the_field(
    live_service: Callable[..., LiveService], body: dict[str, Any], field: str, words: str
) -> None:
    service = live_service(allow_private_urls=False)
    response = service.http.post("/process", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith(f"{field}:")
    assert words in detail


@pytest.mark.allow_error_log  # the 4xx from core is logged as an error
def test_bad_inputs_end_not_processed_with_a_reason_and_the_next_job_runs(
    live_service: Callable[..., LiveService],
    recording_core: RecordingCore,
    media: tuple[str, Path],
) -> None:
    base, root = media
    (root / "notes.mp4").write_text("this is not a video\n" * 100)
    (root / "big.mp4").write_bytes(b"\0" * 300_000)
    (root / "broken.srt").write_bytes(b"\xff\xfe\x00garbage without any cue\x00" * 10)
    (root / "good.srt").write_text("1\n00:00:00,500 --> 00:00:01,000\nHello.\n")
    service = live_service(
        core_url=recording_core.url, max_download_bytes=200_000, max_video_duration=10
    )
    cases = {
        f"{base}/missing.mp4": "404",
        f"{base}/notes.mp4": "video",
        f"{base}/big.mp4": "limit",
        f"{base}/six.mp4": "longer than",
    }
    jobs = {service.submit(url): words for url, words in cases.items()}
    subtitled = service.submit(f"{base}/short.mp4", subtitles=f"{base}/broken.srt")
    jobs[subtitled] = "subtitles"
    for job_id, words in jobs.items():
        job = service.wait_done(job_id)
        assert job["status"] == "not_processed", job
        assert words in job["reason"], job["reason"]
        final = recording_core.wait_final(job_id)
        assert final["status"] == "NOT_PROCESSED"
        assert final["reason"] == job["reason"]

    good = service.wait_done(service.submit(f"{base}/short.mp4", subtitles=f"{base}/good.srt"))
    assert good["status"] == "processed"
    assert service.http.get("/healthz").status_code == 200


def test_hosts_resolving_to_private_addresses_are_refused_when_fetched(
    live_service: Callable[..., LiveService], media: tuple[str, Path]
) -> None:
    base, _ = media
    service = live_service(allow_private_urls=False)
    port = base.rsplit(":", 1)[1]
    job = service.wait_done(service.submit(f"http://localhost:{port}/short.mp4"))
    assert job["status"] == "not_processed"
    assert "loopback" in job["reason"]


@pytest.fixture
def redirector() -> Iterator[Callable[[str], str]]:
    """Factory: ``redirector(target)`` → a loopback URL that answers 302 to ``target``."""
    targets: list[str] = []

    class Redirect(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", targets[int(self.path.strip("/"))])
            self.send_header("Content-Length", "0")
            self.end_headers()

    with serving(Redirect) as base:

        def redirect(target: str) -> str:
            targets.append(target)
            return f"{base}/{len(targets) - 1}"

        yield redirect


def test_every_redirect_is_checked_against_the_url_policy(
    live_service: Callable[..., LiveService],
    media: tuple[str, Path],
    redirector: Callable[[str], str],
) -> None:
    base, _ = media
    service = live_service()  # private addresses allowed, metadata addresses never
    followed = service.wait_done(service.submit(redirector(f"{base}/short.mp4")))
    assert followed["status"] == "processed"
    refused = service.wait_done(service.submit(redirector("http://169.254.169.254/latest/")))
    assert refused["status"] == "not_processed"
    assert "metadata" in refused["reason"]


def test_job_timeout_ends_the_job_not_processed(
    live_service: Callable[..., LiveService], media: tuple[str, Path]
) -> None:
    base, _ = media
    captioner = OverrunCaptioner()
    worker_log = logging.getLogger("app.service.worker")
    level = worker_log.level
    worker_log.setLevel(logging.INFO)
    worker_log.addHandler(captioner)
    try:
        service = live_service(captioner, job_timeout=0.3)
        job = service.wait_done(service.submit(f"{base}/short.mp4"))
        assert job["status"] == "not_processed"
        assert "longer than 0.3 s" in job["reason"]
        again = service.wait_done(service.submit(f"{base}/short.mp4?again"))
        assert again["status"] == "not_processed"
    finally:
        worker_log.removeHandler(captioner)
        worker_log.setLevel(level)


def test_a_slow_media_server_ends_the_job_at_the_download_timeout(
    live_service: Callable[..., LiveService],
    trickle_server: Callable[[float | None], TrickleServer],
) -> None:
    server = trickle_server(0.1)  # a byte every 0.1 s: no read ever times out
    service = live_service(download_timeout=1.0, connect_timeout=30.0, job_timeout=60.0)
    started = time.monotonic()
    job = service.wait_done(service.submit(server.url), timeout=30)
    assert job["status"] == "not_processed"
    assert "download took longer than 1 s" in job["reason"]
    assert time.monotonic() - started < 10


def test_shutdown_interrupts_a_download_and_queues_the_job_again(
    tmp_path: Path, trickle_server: Callable[[float | None], TrickleServer]
) -> None:
    server = trickle_server(None)  # headers, then nothing: the download never ends by itself
    settings = service_settings(tmp_path, download_timeout=600.0, connect_timeout=600.0)
    service = LiveService(settings, ScriptedCaptioner()).start()
    job_id = service.submit(server.url)
    assert server.headers_sent.wait(30)
    started = time.monotonic()
    service.stop()
    assert time.monotonic() - started < 10
    with sqlite3.connect(settings.db_path) as db:
        (status,) = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    assert status == "queued"


def _disk_full_error() -> sqlite3.OperationalError:
    """The very error SQLite raises when its disk is full (from a database capped in size)."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (x)")
    db.execute("PRAGMA max_page_count = 2")
    try:
        for _ in range(100):
            db.execute("INSERT INTO t VALUES (?)", ("x" * 4096,))
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        db.close()
    raise AssertionError("SQLite never ran out of room")


class FullDiskStore(SqliteJobStore):
    """The real store, whose chosen writes fail as on a full disk while ``full`` holds them."""

    instances: ClassVar[list[FullDiskStore]] = []

    def __init__(self, path: Path | str) -> None:
        super().__init__(path)
        self.full: set[str] = set()
        self.refused = threading.Event()
        FullDiskStore.instances.append(self)

    def _refuse(self, what: str) -> None:
        if what in self.full:
            self.refused.set()
            raise _disk_full_error()

    def _add_job(self, request: JobRequest, max_queued: int, retry_after: int) -> Submission:
        self._refuse("add_job")
        return super()._add_job(request, max_queued, retry_after)

    def _finish(
        self, job_id: str, status: JobStatus, reason: str | None, event: OutboxEvent | None
    ) -> None:
        self._refuse("finish")
        super()._finish(job_id, status, reason, event)


@pytest.fixture
def full_disk_store(monkeypatch: pytest.MonkeyPatch) -> Callable[[], FullDiskStore]:
    """Makes services built after it use a FullDiskStore; returns the last one built."""
    monkeypatch.setattr("app.service.backends.local.SqliteJobStore", FullDiskStore)
    FullDiskStore.instances.clear()
    return lambda: FullDiskStore.instances[-1]


def test_a_full_store_disk_answers_503_json_with_retry_after(
    live_service: Callable[..., LiveService],
    full_disk_store: Callable[[], FullDiskStore],
    media: tuple[str, Path],
) -> None:
    base, _ = media
    service = live_service(retry_after=17)
    full_disk_store().full.add("add_job")
    response = service.http.post("/process", json={"url": f"{base}/short.mp4"})
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"] == "17"
    assert "is full" in response.json()["detail"]
    assert "service.sqlite3" in response.json()["detail"]
    full_disk_store().full.clear()
    assert service.wait_done(service.submit(f"{base}/short.mp4"))["status"] == "processed"


def test_a_final_status_refused_by_a_full_disk_is_written_once_space_is_freed(
    live_service: Callable[..., LiveService],
    full_disk_store: Callable[[], FullDiskStore],
    media: tuple[str, Path],
) -> None:
    base, _ = media
    captioner = GatedCaptioner()
    service = live_service(captioner)
    store = full_disk_store()
    job_id = service.submit(f"{base}/short.mp4")
    assert captioner.entered.wait(30)
    store.full.add("finish")
    captioner.gate.set()
    assert store.refused.wait(30)
    assert service.job(job_id)["status"] == "running"
    again = service.http.post("/process", json={"url": f"{base}/short.mp4"}).json()
    assert (again["job_id"], again["created"]) == (job_id, False)

    store.full.clear()  # space is freed: no restart needed
    assert service.wait_done(job_id)["status"] == "processed"
    fresh = service.http.post("/process", json={"url": f"{base}/short.mp4"}).json()
    assert fresh["created"] is True


def test_core_failing_then_down_gets_everything_once_it_recovers(
    live_service: Callable[..., LiveService],
    recording_core: RecordingCore,
    media: tuple[str, Path],
) -> None:
    base, _ = media
    recording_core.fail_with(503)
    service = live_service(core_url=recording_core.url)
    job_id = service.submit(f"{base}/six.mp4")
    job = service.wait_done(job_id)
    assert job["status"] == "processed"
    recording_core.wait_for(lambda c: len(c.requests) >= 3)  # retried, not given up
    assert not recording_core.events

    recording_core.down()
    recording_core.recover()
    before = len(recording_core.requests)
    recording_core.up()

    final = recording_core.wait_final(job_id)
    assert final["status"] == "PROCESSED"
    assert recording_core.descriptions(job_id) == job["descriptions"]
    assert len(recording_core.requests) > before
    assert not recording_core.duplicates
    metrics = service.http.get("/metrics").text
    assert "describer_callback_retries_total" in metrics


@pytest.mark.allow_error_log  # a refused callback is logged as an error
def test_a_callback_refused_with_4xx_is_recorded_failed_and_the_rest_still_arrive(
    live_service: Callable[..., LiveService],
    recording_core: RecordingCore,
    media: tuple[str, Path],
) -> None:
    base, _ = media
    recording_core.fail_with(400, count=1)
    service = live_service(core_url=recording_core.url)
    job_id = service.submit(f"{base}/short.mp4")
    final = recording_core.wait_final(job_id)
    assert final["status"] == "PROCESSED"
    assert [plain(d["text"]) for d in recording_core.descriptions(job_id)] == ["a blue scene"]
    assert [r.status for r in recording_core.requests] == [400, 200, 200]
    metrics = service.http.get("/metrics").text
    assert 'describer_callbacks_total{result="failed"} 1.0' in metrics
    assert 'describer_outbox_events{state="failed"} 1.0' in metrics


@pytest.mark.allow_error_log
def test_an_unexpected_error_while_loading_is_reported_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Such an error (a thread-unsafe import) once killed the loading task unseen: /readyz
    # said "loading" for ever.
    def broken(device: str) -> None:
        raise AttributeError("partially initialized module 'torch' has no attribute 'Tensor'")

    monkeypatch.setattr("app.service.service.check_decode_device", broken)
    service = LiveService(service_settings(tmp_path), ScriptedCaptioner())
    service._thread.start()
    try:
        readiness = wait_until(
            lambda: (r := service.http.get("/readyz").json())["model"] != "loading" and r,
            what="the model to load or fail",
        )
        assert readiness["ready"] is False
        assert readiness["model"] == (
            "failed: AttributeError: partially initialized module 'torch' has no attribute 'Tensor'"
        )
    finally:
        service.stop()


def test_bearer_token_guards_every_endpoint_but_health(
    live_service: Callable[..., LiveService], media: tuple[str, Path]
) -> None:
    base, _ = media
    service = live_service(api_token="a-token-long-enough-for-prod")
    anonymous = httpx.Client(base_url=service.url)
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/readyz").status_code == 200
    for method, path in [("POST", "/process"), ("GET", "/jobs/x"), ("GET", "/metrics")]:
        response = anonymous.request(method, path, json={"url": f"{base}/short.mp4"})
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
    wrong = anonymous.post(
        "/process", json={"url": f"{base}/short.mp4"}, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    # Authentication comes before the body is looked at: nothing is learnt without a token.
    for content in (b"{not json", b'{"url": 42}', b"{}"):
        for headers in ({}, {"Authorization": "Bearer nope"}):
            refused = anonymous.post(
                "/process", content=content, headers={"Content-Type": "application/json", **headers}
            )
            assert refused.status_code == 401, (content, headers, refused.text)
            assert refused.headers["www-authenticate"] == "Bearer"
    bad_query = anonymous.get("/jobs/x/descriptions", params={"format": "doc"})
    assert bad_query.status_code == 401
    assert service.http.post("/process", content=b"{not json").status_code == 422
    anonymous.close()
    job_id = service.submit(f"{base}/short.mp4")
    assert service.wait_done(job_id)["status"] == "processed"


class _Assets(HTMLParser):
    """Collects what an HTML page loads: scripts, stylesheets, icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        url = found.get("src") if tag == "script" else found.get("href") if tag == "link" else None
        if url:
            self.urls.append(url)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_work_offline_and_need_no_token(
    live_service: Callable[..., LiveService], page: str
) -> None:
    service = live_service(api_token="a-token-long-enough-for-prod")
    with httpx.Client(base_url=service.url) as anonymous:
        html = anonymous.get(page)
        assert html.status_code == 200
        assert "http://" not in html.text and "https://" not in html.text, html.text
        parser = _Assets()
        parser.feed(html.text)
        scripts = [u for u in parser.urls if u.endswith(".js")]
        assert scripts and any(u.endswith(".css") or u.endswith(".png") for u in parser.urls)
        for url in parser.urls:
            asset = anonymous.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url
        assert anonymous.get("/openapi.json").status_code == 200


async def test_100_concurrent_submits_are_accepted_or_refused_and_none_is_lost(
    live_service: Callable[..., LiveService], media: tuple[str, Path]
) -> None:
    base, _ = media
    captioner = GatedCaptioner()
    service = await asyncio.to_thread(live_service, captioner, queue_max=5, retry_after=7)
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:

        async def submit(n: int) -> httpx.Response:
            return await client.post("/process", json={"url": f"{base}/short.mp4?n={n}"})

        responses = await asyncio.gather(*(submit(n) for n in range(100)))
        health = await client.get("/healthz")
        assert health.status_code == 200

        accepted = [r.json()["job_id"] for r in responses if r.status_code == 202]
        refused = [r for r in responses if r.status_code == 503]
        assert len(accepted) + len(refused) == 100
        assert 5 <= len(accepted) <= 6
        assert len(set(accepted)) == len(accepted)
        assert all(r.headers["retry-after"] == "7" for r in refused)
        assert "queue is full" in refused[0].json()["detail"]

        captioner.gate.set()
        for job_id in accepted:
            job = await asyncio.to_thread(service.wait_done, job_id)
            assert job["status"] == "processed"
        assert (await submit(1000)).status_code == 202


def test_shutdown_mid_job_requeues_it_and_a_restart_finishes_it_once(
    tmp_path: Path,
    recording_core: RecordingCore,
    media: tuple[str, Path],
) -> None:
    base, _ = media
    settings = service_settings(tmp_path, core_url=recording_core.url, batch_size=1)
    captioner = MidJobCaptioner()
    worker_log = logging.getLogger("app.service.worker")
    level = worker_log.level
    worker_log.setLevel(logging.INFO)
    worker_log.addHandler(captioner)
    try:
        first = LiveService(settings, captioner).start()
        job_id = first.submit(f"{base}/six.mp4")
        assert captioner.entered.wait(30)

        stopping = threading.Thread(target=first.stop)
        stopping.start()
        wait_until(lambda: first.server.should_exit, what="the shutdown to begin")
        captioner.gate.set()
        stopping.join(60)
        assert not stopping.is_alive()
    finally:
        worker_log.removeHandler(captioner)
        worker_log.setLevel(level)
    recording_core.wait_for(lambda c: len(c.descriptions(job_id)) >= 1)
    assert recording_core.final(job_id) is None

    second = LiveService(settings, ScriptedCaptioner()).start()
    try:
        job = second.wait_done(job_id)
        assert job["status"] == "processed"
        assert job["attempts"] == 2
        final = recording_core.wait_final(job_id)
        assert final["descriptions"] == len(job["descriptions"])
        assert recording_core.descriptions(job_id) == job["descriptions"]
        assert not recording_core.duplicates
    finally:
        second.stop()


def _unready(tmp_path: Path, **settings: object) -> str:
    """Why a service started with ``settings`` stays unready, once its start-up checks end."""
    service = LiveService(service_settings(tmp_path, **settings), ScriptedCaptioner())
    service._thread.start()
    try:
        ready = wait_until(
            lambda: (r := service.http.get("/readyz")).json()["model"] != "loading" and r,
            what="the start-up checks to finish",
        )
        assert ready.status_code == 503
        return str(ready.json()["model"])
    finally:
        service.stop()


@pytest.mark.allow_error_log  # "cannot take jobs: ..." is the point
@pytest.mark.skipif(nvdec_usable(), reason="this machine has a GPU that FFmpeg can decode on")
def test_a_decode_device_that_cannot_be_opened_keeps_the_service_unready(
    tmp_path: Path,
) -> None:
    assert "frames cannot be decoded on 'cuda'" in _unready(tmp_path, decode_device="cuda")


@pytest.mark.allow_error_log  # "cannot take jobs: ..." is the point
def test_a_download_folder_that_cannot_be_used_keeps_the_service_unready(
    tmp_path: Path,
) -> None:
    # Before, every job with a URL ended "internal error (NotADirectoryError)".
    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    reason = _unready(tmp_path, download_dir=taken)
    assert f"the download folder {taken} cannot be made" in reason


def test_an_endpoint_that_refuses_ends_the_job_not_processed_naming_it(
    live_service: Callable[..., LiveService],
    recording_core: RecordingCore,
    media: tuple[str, Path],
    chat_endpoint: ChatEndpoint,
) -> None:
    chat_endpoint.script.append((400, '{"error": {"message": "image input is not supported"}}'))
    captioner = load_captioner(SERVED, CaptionOptions(api_base=chat_endpoint.url))
    service = live_service(captioner, core_url=recording_core.url)
    base, _ = media

    job = service.wait_done(service.submit(f"{base}/short.mp4"))

    assert job["status"] == "not_processed"
    reason = job["reason"]
    assert f"{chat_endpoint.url}/chat/completions" in reason
    assert "HTTP 400" in reason and "image input is not supported" in reason
    assert recording_core.wait_final(job["job_id"])["reason"] == reason


# --- Spoken descriptions ("audio": true) --------------------------------------------------------

PUBLIC = "https://describer.example.org"


def links(job_id: str, base: str = "") -> dict[str, str]:
    """The media links of a job, under ``base``."""
    return {"audio_url": f"{base}/jobs/{job_id}/audio", "film_url": f"{base}/jobs/{job_id}/media"}


def test_an_audio_job_speaks_each_description_and_serves_its_track_with_ranges(
    live_service: Callable[..., LiveService],
    core_factory: Callable[..., RecordingCore],
    media: tuple[str, Path],
    tmp_path: Path,
) -> None:
    core = core_factory(secret=SECRET)
    service = live_service(core_url=core.url, callback_secret=SECRET, public_url=PUBLIC)
    base, _ = media

    job_id = service.submit(f"{base}/six.mp4", audio=True)

    final = core.wait_final(job_id)
    assert final["status"] == "PROCESSED"
    links = {
        "audio_url": f"{PUBLIC}/jobs/{job_id}/audio",
        "film_url": f"{PUBLIC}/jobs/{job_id}/media",
    }
    assert final["media"] == links
    job = service.wait_done(job_id)
    assert (job["audio"], job["media"]) == (True, links)
    delivered = core.descriptions(job_id)
    assert len(delivered) >= 4 and delivered == job["descriptions"]
    assert not core.duplicates
    # Each description was spoken before it was sent, and fits its window.
    for d in delivered:
        assert 0.5 < d["spoken_duration"] < d["end"] - d["start"] and d["fits"], d

    folder = service.settings.media_dir / job_id
    assert sorted(p.name for p in service.settings.media_dir.iterdir()) == [job_id]
    on_disk = (folder / "description.m4a").read_bytes()
    whole = service.http.get(f"/jobs/{job_id}/audio")
    assert whole.status_code == 200 and whole.content == on_disk
    assert whole.headers["content-type"] == "audio/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    part = service.http.get(f"/jobs/{job_id}/audio", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-1099/{len(on_disk)}"
    assert part.content == on_disk[100:1100]
    tail = service.http.get(f"/jobs/{job_id}/audio", headers={"Range": f"bytes={len(on_disk)}-"})
    assert tail.status_code == 416

    # The served track: speech from each window's start for its spoken duration, silence
    # elsewhere (10 ms frames; 50 ms of tolerance at the edges).
    track = tmp_path / "served.m4a"
    track.write_bytes(whole.content)
    frames = loud(decode(track))
    assert frames.size / 100 == pytest.approx(20.0, abs=0.1)
    expected = np.zeros_like(frames)
    for d in delivered:
        on = slice(round(d["start"] * 100), round((d["start"] + d["spoken_duration"]) * 100))
        assert frames[on].mean() > 0.6, d
        expected[on] = True
    margin = np.convolve(expected, np.ones(11), mode="same") > 0
    assert not frames[~margin].any()

    # The DAPT script references the spoken track where each description is said.
    dapt = service.http.get(f"/jobs/{job_id}/descriptions", params={"format": "dapt"}).text
    assert 'daptm:scriptType="asRecorded"' in dapt
    assert dapt.count(f'src="{PUBLIC}/jobs/{job_id}/audio"') == len(delivered)

    film = service.http.get(f"/jobs/{job_id}/media", headers={"Range": "bytes=0-"})
    assert film.status_code == 206 and film.headers["content-type"] == "video/x-matroska"
    assert film.content == (folder / "film.mkv").read_bytes()
    with av.open(str(folder / "film.mkv")) as container:
        assert len(container.streams.video) == 1
        (described,) = container.streams.audio
        assert described.metadata["title"] == "Audio description"


def test_approving_an_audio_job_renders_its_audio_again_from_the_approved_texts(
    live_service: Callable[..., LiveService],
    core_factory: Callable[..., RecordingCore],
    media: tuple[str, Path],
    tmp_path: Path,
) -> None:
    core = core_factory()
    service = live_service(core_url=core.url)
    base, _ = media
    job_id = service.submit(f"{base}/six.mp4", audio=True)
    assert core.wait_final(job_id)["status"] == "PROCESSED"
    first = core.descriptions(job_id)[0]
    before = loud(decode(service.settings.media_dir / job_id / "description.m4a"))

    review = service.http.get(f"/jobs/{job_id}/review").json()
    (edited,) = [d for d in review["descriptions"] if d["start"] == first["start"]]
    service.http.patch(
        f"/jobs/{job_id}/descriptions/{edited['id']}",
        json={"version": 1, "text": "A red curtain slowly rises over an empty stage."},
    ).raise_for_status()
    approved = service.http.post(f"/jobs/{job_id}/approve").json()
    assert approved["rendering"] is True
    media_id = f"{job_id}:media:{approved['revision']}"
    core.wait_for(lambda c: media_id in c.events)
    body = core.events[media_id].json
    assert core.events[media_id].path == f"/jobs/{job_id}/media"
    assert (body["media"], body["reason"]) == (links(job_id), None)

    # The first window now holds the reviewer's nine words (over twice the first text's
    # speech); the others are spoken as before.
    after = loud(decode(service.settings.media_dir / job_id / "description.m4a"))
    window = slice(round(first["start"] * 100), round(first["end"] * 100))
    assert after[window].sum() / 100 > 2 * first["spoken_duration"]
    assert before[window].sum() / 100 == pytest.approx(first["spoken_duration"], abs=0.06)
    rest = slice(round(first["end"] * 100), None)
    assert np.array_equal(after[rest], before[rest])


def test_audio_options_are_checked_before_a_job_is_accepted(
    live_service: Callable[..., LiveService], media: tuple[str, Path]
) -> None:
    service = live_service()
    base, _ = media
    url = f"{base}/short.mp4"
    for extra, field, words in [
        ({"audio": True, "voice": "xx-nope"}, "voice", "espeak-ng has no voice 'xx-nope'"),
        ({"audio": True, "tts": "festival"}, "tts", "unknown text-to-speech engine"),
        ({"voice": "en-us"}, "voice", 'only used with "audio": true'),
        ({"audio": True, "language": "ru"}, "language", "this service describes in 'en'"),
        ({"audio": True, "language": "english"}, "language", "pattern"),
    ]:
        response = service.http.post("/process", json={"url": url, **extra})
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith(f"{field}:"), response.text
        assert words in response.json()["detail"]
    assert service.http.get("/metrics").text.count('describer_jobs{status="queued"} 0.0') == 1

    # The same video with and without audio: two jobs; only the one with audio has media.
    silent = service.submit(url)
    spoken = service.submit(url, audio=True, voice="en-us", language="en")
    assert silent != spoken
    assert service.wait_done(silent)["media"] is None
    missing = service.http.get(f"/jobs/{silent}/audio")
    assert missing.status_code == 404
    assert 'submitted without "audio": true' in missing.json()["detail"]
    assert service.wait_done(spoken)["media"] == links(spoken)  # no public URL: paths
    assert service.http.get(f"/jobs/{spoken}/media").status_code == 200
    assert service.http.get("/jobs/nope/audio").status_code == 404


def test_media_past_the_retention_or_over_the_size_limit_are_removed(
    live_service: Callable[..., LiveService], media: tuple[str, Path]
) -> None:
    day = 86400.0
    service = live_service(media_retention=day, media_max_bytes=1_500_000)
    base, _ = media
    media_dir = service.settings.media_dir
    now = time.time()
    for name, size, age in [
        ("expired", 1000, 2 * day),
        ("older", 1_000_000, 3600),
        ("old", 1_000_000, 1800),
    ]:
        folder = media_dir / name
        folder.mkdir(parents=True)
        (folder / "description.m4a").write_bytes(b"\0" * size)
        os.utime(folder, (now - age, now - age))

    job_id = service.submit(f"{base}/short.mp4", audio=True)
    assert service.wait_done(job_id)["status"] == "processed"

    new = sum(p.stat().st_size for p in (media_dir / job_id).iterdir())
    assert new < 400_000  # so that "old" and the new job fit the limit together
    # Past the retention: gone. Over the limit: the oldest other job's media, then no more.
    assert sorted(p.name for p in media_dir.iterdir()) == sorted(["old", job_id])
    assert service.http.get(f"/jobs/{job_id}/audio").status_code == 200
    # Served no longer once past the retention, even before the next sweep.
    os.utime(media_dir / job_id, (now - 2 * day, now - 2 * day))
    expired = service.http.get(f"/jobs/{job_id}/audio")
    assert expired.status_code == 404
    assert "was removed (media are kept 86400 s" in expired.json()["detail"]


def test_a_rendering_failure_ends_the_job_with_a_reason_and_keeps_its_descriptions(
    live_service: Callable[..., LiveService],
    recording_core: RecordingCore,
    media: tuple[str, Path],
    tmp_path: Path,
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the media directory should be\n")
    service = live_service(core_url=recording_core.url, media_dir=blocked)
    base, _ = media

    job_id = service.submit(f"{base}/six.mp4", audio=True)

    final = recording_core.wait_final(job_id)
    assert final["status"] == "NOT_PROCESSED" and final["media"] is None
    delivered = recording_core.descriptions(job_id)
    assert len(delivered) >= 4 and final["descriptions"] == len(delivered)
    assert all(d["spoken_duration"] > 0 for d in delivered)
    assert final["reason"].startswith(
        f"the {len(delivered)} description(s) were delivered, but rendering their audio "
        f"failed: cannot write the media directory {blocked}"
    )
    assert not recording_core.duplicates
    job = service.wait_done(job_id)
    assert job["descriptions"] == delivered and job["reason"] == final["reason"]
    assert blocked.read_text() == "a file where the media directory should be\n"
    answer = service.http.get(f"/jobs/{job_id}/media")
    assert answer.status_code == 404
    assert "was not processed, so it has no media: the" in answer.json()["detail"]


class _Stopping(logging.Handler):
    """Set once the worker logs that it stops its jobs (attach it to the worker's logger)."""

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "stopping at the next safe point" in record.getMessage():
            self.event.set()


def test_a_job_stopped_while_rendering_runs_again_without_sending_descriptions_twice(
    tmp_path: Path,
    recording_core: RecordingCore,
    media: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, _ = media
    settings = service_settings(tmp_path, core_url=recording_core.url)
    rendering = threading.Event()
    stopping = _Stopping()
    real_mix = media_module.mix_film

    def mix_until_stopped(*args: Any, **kwargs: Any) -> Path:
        # The first rendering goes on only once the service stops, so the stop lands in it.
        if not rendering.is_set():
            rendering.set()
            assert stopping.event.wait(60), "the service never stopped"
        return real_mix(*args, **kwargs)

    monkeypatch.setattr(media_module, "mix_film", mix_until_stopped)
    worker_log = logging.getLogger("app.service.worker")
    level = worker_log.level
    worker_log.setLevel(logging.INFO)
    worker_log.addHandler(stopping)
    try:
        first = LiveService(settings, ScriptedCaptioner()).start()
        job_id = first.submit(f"{base}/short.mp4", audio=True)
        assert rendering.wait(60)
        assert first.job(job_id)["progress"]["stage"] == "rendering"
        not_yet = first.http.get(f"/jobs/{job_id}/audio")
        assert not_yet.status_code == 404
        assert "is running: its audio is rendered after its descriptions" in not_yet.text
        first.stop()
    finally:
        worker_log.removeHandler(stopping)
        worker_log.setLevel(level)
    sent = recording_core.descriptions(job_id)
    assert len(sent) == 2 and recording_core.final(job_id) is None
    # Nothing of the job in the media directory; a crash's staging folder, planted here,
    # is removed by the next start.
    assert list(settings.media_dir.iterdir()) == []
    (settings.media_dir / ".partial-crashed").mkdir()
    (settings.media_dir / ".partial-crashed" / "film.mkv").write_bytes(b"half a film")

    second = LiveService(settings, ScriptedCaptioner()).start()
    try:
        job = second.wait_done(job_id)
        assert (job["status"], job["attempts"]) == ("processed", 2)
        final = recording_core.wait_final(job_id)
        assert final["media"] == {
            "audio_url": f"/jobs/{job_id}/audio",
            "film_url": f"/jobs/{job_id}/media",
        }
        assert recording_core.descriptions(job_id) == sent == job["descriptions"]
        assert not recording_core.duplicates
        description_posts = [r for r in recording_core.requests if r.path.endswith("/descriptions")]
        assert len(description_posts) == len(sent)
        assert sorted(p.name for p in settings.media_dir.iterdir()) == [job_id]
        assert second.http.get(f"/jobs/{job_id}/audio").status_code == 200
    finally:
        second.stop()


def test_a_service_with_a_piper_voice_file_narrates_with_it(
    live_service: Callable[..., LiveService], media: tuple[str, Path], tmp_path: Path
) -> None:
    from piper import PiperVoice

    path = make_tiny_piper_voice(tmp_path)
    service = live_service(tts="piper", voice=str(path))
    base, _ = media
    url = f"{base}/short.mp4"
    refused = service.http.post("/process", json={"url": url, "audio": True, "voice": str(path)})
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith(f"voice: {str(path)!r} is a voice file")

    job = service.wait_done(service.submit(url, audio=True))
    assert job["status"] == "processed" and len(job["descriptions"]) == 2
    voice = PiperVoice.load(path)
    track = tmp_path / "track.m4a"
    track.write_bytes(service.http.get(f"/jobs/{job['job_id']}/audio").content)
    frames = loud(decode(track))
    for d in job["descriptions"]:
        # The tiny voice speaks HOP samples per phoneme id (its first, silent one trimmed).
        ids = sum(len(voice.phonemes_to_ids(p)) for p in voice.phonemize(d["text"]))
        assert d["spoken_duration"] == pytest.approx(ids * HOP / PIPER_RATE, abs=0.002)
        on = frames[round(d["start"] * 100) : round((d["start"] + d["spoken_duration"]) * 100)]
        assert on.mean() > 0.9

    # Another engine for one job: its own voice for the language, not the service's file.
    espeak = service.wait_done(service.submit(url, audio=True, tts="espeak"))
    assert espeak["status"] == "processed"
    durations = [d["spoken_duration"] for d in espeak["descriptions"]]
    assert durations != [d["spoken_duration"] for d in job["descriptions"]]
