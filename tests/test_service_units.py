"""The service's parts on their own: settings, SSRF policy, store, queue, callbacks."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
import uvloop
from alembic.script import ScriptDirectory
from pydantic import ValidationError

from app.callbacks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    CallbackClient,
    Delivery,
    description_event,
    sign,
    status_event,
    verify,
)
from app.config import Settings
from app.errors import InputError
from app.metrics import Metrics
from app.pipeline.types import Description, Progress, Stage
from app.registry import Member
from app.security import URLPolicy, address_problem
from app.service import migrations
from app.service.backends import BACKENDS, build_backend
from app.service.backends.local import LocalBackend
from app.service.jobs import (
    DescriptionNotFound,
    EventState,
    Job,
    JobOptions,
    JobRequest,
    JobStatus,
    QueueFull,
    StaleVersion,
)
from app.service.outbox import OutboxDispatcher
from app.service.postgres import PostgresJobStore
from app.service.store import SqliteJobStore
from tests.fixtures.core import RecordingCore

# --- settings --------------------------------------------------------------------------------


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESCRIBER_QUEUE_MAX", "7")
    monkeypatch.setenv("DESCRIBER_CORE_URL", "https://core.example.org/api/")
    monkeypatch.setenv("DESCRIBER_MAX_MEMORY", '{"0": "10GiB"}')
    monkeypatch.setenv("DESCRIBER_MAX_SUBTITLES_BYTES", "1234")
    read = settings()
    assert read.media_options().fetch.max_subtitles_bytes == 1234
    assert read.queue_max == 7
    assert read.core_url == "https://core.example.org/api"
    assert read.caption_options().max_memory == {"0": "10GiB"}
    assert read.describe_options().max_duration == read.max_video_duration


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"environment": "production"}, "api_token"),
        ({"environment": "production", "api_token": "short"}, "api_token"),
        (
            {"environment": "production", "api_token": "x" * 32, "allow_private_urls": True},
            "allow_private_urls",
        ),
        (
            {"environment": "production", "api_token": "x" * 32, "core_url": "https://core"},
            "callback_secret",
        ),
        ({"detector": "magic"}, "adaptive"),
        ({"speech_detector": "ears"}, "silero"),
        ({"core_url": "ftp://core"}, "http"),
        ({"device": "tpu"}, "cuda"),
        ({"decode_device": "gpu"}, "decode_device"),
        ({"queue_max": 0}, "queue_max"),
    ],
)
def test_unsafe_or_invalid_settings_are_refused(values: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        settings(**values)


def test_production_settings_with_secrets_are_accepted() -> None:
    read = settings(
        environment="production",
        api_token="t" * 32,
        core_url="https://core.example.org",
        callback_secret="s" * 32,
    )
    assert read.api_token is not None


# --- SSRF policy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "allow_private", "problem"),
    [
        ("93.184.216.34", False, None),
        ("2606:2800:220:1:248:1893:25c8:1946", False, None),
        ("127.0.0.1", False, "loopback"),
        ("127.0.0.1", True, None),
        ("10.0.0.8", False, "private"),
        ("192.168.1.1", True, None),
        ("::1", False, "loopback"),
        ("::ffff:10.0.0.1", False, "private"),
        ("fd12::1", False, "private"),
        ("169.254.169.254", True, "metadata"),
        ("fd00:ec2::254", True, "metadata"),
        ("169.254.1.1", True, "link-local"),
        ("fe80::1", True, "link-local"),
        ("0.0.0.0", True, "unspecified"),
        ("224.0.0.1", True, "multicast"),
        ("100.64.0.1", False, "non-public"),
        # IPv6 forms that carry an IPv4 address a gateway connects to.
        ("::127.0.0.1", False, "loopback address (127.0.0.1, embedded in ::7f00:1)"),
        ("::169.254.169.254", True, "metadata"),
        ("64:ff9b::127.0.0.1", False, "loopback address (127.0.0.1"),
        ("64:ff9b::10.0.0.1", False, "private address (10.0.0.1"),
        ("64:ff9b::169.254.169.254", True, "metadata"),
        ("64:ff9b::93.184.215.14", False, None),
        ("64:ff9b:1:7f00:0:100::", False, "loopback address (127.0.0.1"),
        ("2002:7f00:1::", False, "loopback address (127.0.0.1"),
        ("2002:a9fe:a9fe::1", True, "metadata"),
        ("2002:5db8:d70e::1", False, None),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False, "private"),
        ("2001:0:a9fe:a9fe:8000:63bf:3fff:fdd2", True, "metadata address (169.254.169.254"),
    ],
)
def test_address_rules(address: str, allow_private: bool, problem: str | None) -> None:
    found = address_problem(ipaddress.ip_address(address), allow_private=allow_private)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_the_guard_resolves_host_names_and_checks_every_address() -> None:
    policy = URLPolicy(allow_private=False)
    with pytest.raises(InputError, match=r"localhost \(127.0.0.1\) is a loopback address"):
        policy(httpx.URL("http://localhost:8000/film.mp4"))
    with pytest.raises(InputError, match="only http and https"):
        policy(httpx.URL("ftp://example.org/film.mp4"))
    with pytest.raises(InputError, match="cannot resolve"):
        policy(httpx.URL("http://no-such-host.invalid/film.mp4"))
    # The address returned is the one the download connects to.
    allowed = URLPolicy(allow_private=True)(httpx.URL("http://localhost:8000/film.mp4"))
    assert allowed in {"127.0.0.1", "::1"}
    assert URLPolicy()(httpx.URL("http://93.184.215.14/film.mp4")) == "93.184.215.14"
    # Submission only checks what needs no DNS.
    policy.check_literal("http://localhost:8000/film.mp4")
    with pytest.raises(InputError, match="private"):
        policy.check_literal("http://10.0.0.1/film.mp4")


# --- store and queue -----------------------------------------------------------------------------


AnyStore = SqliteJobStore | PostgresJobStore


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AnyStore]:
    """Each store test runs against both stores: they keep one contract."""
    opened: AnyStore
    if request.param == "sqlite":
        opened = SqliteJobStore(tmp_path / "jobs.sqlite3")
    else:
        opened = PostgresJobStore(request.getfixturevalue("postgres_url"))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def description(scene: int, text: str = "a red scene") -> Description:
    return Description(
        start=scene * 2.0,
        end=scene * 2.0 + 2,
        frame_time=scene * 2.0 + 1,
        scene_index=scene,
        scene_start=scene * 2.0,
        scene_end=scene * 2.0 + 2,
        text=text,
        similarity=0.25,
        max_words=5,
        fits=True,
    )


async def test_store_deduplicates_active_requests_and_bounds_the_queue(
    store: AnyStore,
) -> None:
    first = await store.add_job(JobRequest("http://a/v.mp4"), max_queued=2, retry_after=5)
    again = await store.add_job(JobRequest("http://a/v.mp4"), max_queued=2, retry_after=5)
    assert first.created and not again.created
    assert again.job.id == first.job.id
    subtitled = await store.add_job(
        JobRequest("http://a/v.mp4", "http://a/v.srt"), max_queued=2, retry_after=5
    )
    assert subtitled.created
    with pytest.raises(QueueFull) as refused:
        await store.add_job(JobRequest("http://b/v.mp4"), max_queued=2, retry_after=5)
    assert refused.value.retry_after == 5

    claimed = await store.start_job(first.job.id)
    assert claimed is not None and claimed.id == first.job.id
    assert claimed.status is JobStatus.RUNNING and claimed.attempts == 1
    # A running job still counts as the active job of its request.
    running = await store.add_job(JobRequest("http://a/v.mp4"), max_queued=9, retry_after=5)
    assert running.job.id == first.job.id
    await store.finish(claimed.id, JobStatus.PROCESSED, None, None)
    assert (await store.get_job(claimed.id)).progress.stage is Stage.DONE
    assert await store.start_job(claimed.id) is None  # it ended: no further run
    after = await store.add_job(JobRequest("http://a/v.mp4"), max_queued=9, retry_after=5)
    assert after.created and after.job.id != first.job.id


async def test_a_store_file_with_progress_columns_moves_them_into_the_record(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(
            """
            CREATE TABLE jobs (
                id TEXT PRIMARY KEY, url TEXT NOT NULL, subtitles TEXT, status TEXT NOT NULL,
                stage TEXT, fraction REAL NOT NULL DEFAULT 0,
                scenes_found INTEGER NOT NULL DEFAULT 0,
                scenes_captioned INTEGER NOT NULL DEFAULT 0, reason TEXT,
                attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
                started_at REAL, finished_at REAL
            );
            INSERT INTO jobs (id, url, status, created_at) VALUES ('old', 'http://a/v.mp4',
                'queued', 1.0);
            INSERT INTO jobs (id, url, status, stage, fraction, scenes_found, scenes_captioned,
                created_at) VALUES ('done', 'http://a/w.mp4', 'processed', 'done', 1.0, 7, 3, 2.0);
            INSERT INTO jobs (id, url, status, stage, fraction, scenes_found, created_at)
                VALUES ('half', 'http://a/x.mp4', 'not_processed', 'scanning', 0.5, 2, 3.0);
            """
        )
    store = SqliteJobStore(path)
    await store.open()
    try:
        assert (await store.get_job("old")).progress == Progress()
        done = (await store.get_job("done")).progress
        assert (done.stage, done.fraction, done.scenes_found, done.scenes_captioned) == (
            Stage.DONE,
            1.0,
            7,
            3,
        )
        half = (await store.get_job("half")).progress
        assert (half.stage, half.fraction, half.scenes_found) == (Stage.SCANNING, 0.5, 2)
        claimed = await store.claim_next()
        assert claimed is not None and claimed.id == "old"
        counts = Progress(
            stage=Stage.CAPTIONING,
            scanned_seconds=5.0,
            duration=10.0,
            scenes_found=9,
            scenes_captioned=4,
            scenes_without_pause=3,
            scenes_similar=2,
            captions_dropped=1,
        )
        await store.set_progress("old", counts)
        assert (await store.get_job("old")).progress == counts
    finally:
        await store.close()
    with sqlite3.connect(path) as reopened:
        columns = {row[1] for row in reopened.execute("PRAGMA table_info(jobs)")}
    assert "progress" in columns and not columns & {"stage", "fraction", "scenes_found"}
    # The file is now stamped with the newest schema revision: the next start migrates nothing.
    with sqlite3.connect(path) as reopened:
        (version,) = reopened.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == ScriptDirectory(str(Path(migrations.__file__).parent)).get_current_head()


async def test_a_store_file_without_job_options_gets_them_and_tells_jobs_apart_by_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    migrations.upgrade(f"sqlite:///{path}", "0001")  # the layout before job options
    with sqlite3.connect(path) as old:
        old.execute(
            "INSERT INTO jobs (id, url, status, created_at) "
            "VALUES ('old', 'http://a/v.mp4', 'queued', 1.0)"
        )
    store = SqliteJobStore(path)
    await store.open()
    try:
        assert (await store.get_job("old")).options == JobOptions()
        same = await store.add_job(JobRequest("http://a/v.mp4"), max_queued=9, retry_after=5)
        assert (same.created, same.job.id) == (False, "old")
        audio = JobOptions(audio=True, voice="en-us")
        spoken = await store.add_job(
            JobRequest("http://a/v.mp4", options=audio), max_queued=9, retry_after=5
        )
        assert spoken.created and spoken.job.options == audio
        again = await store.add_job(
            JobRequest("http://a/v.mp4", options=audio), max_queued=9, retry_after=5
        )
        assert (again.created, again.job.id) == (False, spoken.job.id)
    finally:
        await store.close()


async def test_descriptions_and_their_callbacks_are_stored_once_and_in_order(
    store: AnyStore,
) -> None:
    job = (await store.add_job(JobRequest("http://a/v.mp4"), max_queued=9, retry_after=1)).job
    for scene in (0, 1):
        assert await store.add_description(
            job.id, description(scene), description_event(job, description(scene))
        )
    # A second run describing scene 1 again stores nothing new.
    assert not await store.add_description(
        job.id, description(1, "other"), description_event(job, description(1, "other"))
    )
    assert [d.text for d in await store.descriptions(job.id)] == ["a red scene"] * 2
    await store.finish(
        job.id, JobStatus.PROCESSED, None, status_event(job, JobStatus.PROCESSED, None, 2)
    )

    assert await store.jobs_with_pending_events() == [job.id]
    seen = []
    while (event := await store.next_pending_event(job.id)) is not None:
        seen.append(event.event_id)
        await store.settle_event(event.id, EventState.DELIVERED, 1, None)
    assert seen == [f"{job.id}:description:0", f"{job.id}:description:1", f"{job.id}:status"]
    assert (await store.count_events())[EventState.DELIVERED] == 3
    assert (await store.get_job(job.id)).status is JobStatus.PROCESSED


async def test_review_changes_are_versioned_and_kept_in_history(store: AnyStore) -> None:
    """The review contract of both stores: versions, history, deletes, inserts, revision."""
    job = (await store.add_job(JobRequest("http://a/v.mp4"), max_queued=9, retry_after=1)).job
    for scene in (0, 1):
        assert await store.add_description(job.id, description(scene), None)
    (first, second), revision = await store.review_state(job.id)
    assert (first.version, first.origin.value, revision) == (1, "machine", 2)

    revised = await store.revise_description(
        job.id, first.id, 1, dataclasses.replace(first.description, text="a red room")
    )
    assert (revised.id, revised.version, revised.description.text) == (first.id, 2, "a red room")
    with pytest.raises(StaleVersion):
        await store.revise_description(job.id, first.id, 1, first.description)
    deleted = await store.revise_description(job.id, second.id, 1, None)
    assert deleted.deleted and deleted.version == 2
    with pytest.raises(DescriptionNotFound):
        await store.get_description(job.id, second.id)

    inserted = await store.insert_description(
        job.id, dataclasses.replace(description(1, "a reviewer's line"), start=1.5)
    )
    assert (inserted.origin.value, inserted.version) == ("reviewer", 1)
    # A reviewer's description may share a scene with the machine's (deleted) one, and a
    # second machine run still stores nothing new for that scene.
    assert not await store.add_description(job.id, description(1, "again"), None)
    current, revision = await store.review_state(job.id)
    assert [d.description.text for d in current] == ["a red room", "a reviewer's line"]
    assert revision == 2 + 2 + 1
    assert [d.text for d in await store.descriptions(job.id)] == [
        "a red room",
        "a reviewer's line",
    ]
    assert len(await store.scenes_described(job.id)) == 3
    (old,) = await store.description_history(job.id, first.id)
    assert (old.version, old.description.text) == (1, "a red scene")
    assert old.changed_at is not None

    event = description_event(job, description(0))
    assert await store.add_event(event) and not await store.add_event(event)
    assert [j.id for j in await store.recent_jobs(5)] == [job.id]


async def test_descriptions_stored_by_earlier_versions_read_back(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    await store.open()
    try:
        await _read_back_old_descriptions(store, tmp_path)
    finally:
        await store.close()


async def _read_back_old_descriptions(store: SqliteJobStore, tmp_path: Path) -> None:
    job = (await store.add_job(JobRequest("http://a/v.mp4"), max_queued=9, retry_after=1)).job
    await store.add_description(job.id, description(1), None)
    # A row as earlier versions wrote it: "novelty" held the similarity.
    old = {**dataclasses.asdict(description(0)), "novelty": 0.5}
    del old["similarity"]
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as conn:
        conn.execute(
            "INSERT INTO descriptions (job_id, scene_index, start_time, data) VALUES (?, 0, 0, ?)",
            (job.id, json.dumps(old)),
        )

    assert await store.descriptions(job.id) == [
        dataclasses.replace(description(0), similarity=0.5),
        description(1),
    ]


async def test_the_backend_requeues_interrupted_jobs_and_gives_up_after_max_attempts(
    tmp_path: Path,
) -> None:
    backend = LocalBackend(settings(db_path=tmp_path / "jobs.sqlite3", queue_poll_interval=0.1))
    assert await backend.open(max_attempts=3) == []
    store, queue = backend.store, backend.queue
    once = (await queue.submit(JobRequest("http://a/1.mp4"))).job
    often = (await queue.submit(JobRequest("http://a/2.mp4"))).job
    assert (await queue.next_job()) is not None
    assert (await queue.next_job()) is not None
    for _ in range(2):  # "often" was interrupted twice before
        await store.requeue(often.id)
        await store.claim_next()
    await backend.close()

    # The next process opens the same file.
    backend = LocalBackend(settings(db_path=tmp_path / "jobs.sqlite3", queue_poll_interval=0.1))
    given_up = await backend.open(max_attempts=3)
    try:
        assert [job.id for job in given_up] == [often.id]
        assert (await backend.store.get_job(once.id)).status is JobStatus.QUEUED
        assert await backend.queue.depth() == 1

        waiter = asyncio.create_task(backend.queue.next_job())
        assert (await waiter) is not None
        blocked = asyncio.create_task(backend.queue.next_job())
        backend.queue.close()
        assert await blocked is None
    finally:
        await backend.close()


class CountingBackend(LocalBackend):
    """A backend defined in a test: registering it is the only change it needs."""

    opened = 0

    async def open(self, max_attempts: int) -> list[Job]:
        CountingBackend.opened += 1
        return await super().open(max_attempts)


async def test_a_backend_registered_in_a_test_plugs_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(BACKENDS.members, "counting", Member(f"{__name__}:CountingBackend"))
    chosen = settings(backend="counting", db_path=tmp_path / "jobs.sqlite3")
    backend = build_backend(chosen)
    assert isinstance(backend, CountingBackend)
    assert await backend.open(max_attempts=1) == []
    await backend.close()
    assert CountingBackend.opened == 1
    with pytest.raises(ValidationError, match="unknown job backend 'nope'; choose one of: local"):
        settings(backend="nope")


# --- callbacks -----------------------------------------------------------------------------------


async def test_callbacks_are_signed_and_retried_until_core_takes_them(
    store: AnyStore,
) -> None:
    job = (await store.add_job(JobRequest("http://a/v.mp4"), max_queued=9, retry_after=1)).job
    event = description_event(job, description(3))
    answers = iter([503, 500, 200])
    received: list[httpx.Request] = []

    def core(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(next(answers))

    client = CallbackClient(
        "http://core/api/",
        secret="k" * 20,
        backoff_initial=0.001,
        backoff_max=0.002,
        transport=httpx.MockTransport(core),
    )
    delivery = await client.deliver(event)
    await client.aclose()

    assert delivery.state is EventState.DELIVERED and delivery.attempts == 3
    assert [r.url.path for r in received] == [f"/api/jobs/{job.id}/descriptions"] * 3
    assert {r.content for r in received} == {event.body}
    request = received[-1]
    assert request.headers[EVENT_ID_HEADER] == f"{job.id}:description:3"
    assert verify(request.content, "k" * 20, request.headers[SIGNATURE_HEADER])
    assert request.headers[SIGNATURE_HEADER] == sign(event.body, "k" * 20)
    body = json.loads(request.content)
    assert body["description"]["scene_index"] == 3
    assert body["type"] == "description" and body["url"] == "http://a/v.mp4"
    # "novelty" is the deprecated name of "similarity": core may still read it.
    assert body["description"]["similarity"] == body["description"]["novelty"] == 0.25


@pytest.mark.allow_error_log
async def test_a_4xx_answer_is_not_retried(store: AnyStore) -> None:
    job = (await store.add_job(JobRequest("http://a/v.mp4"), max_queued=9, retry_after=1)).job
    calls = 0

    def core(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(422, text="unknown job")

    client = CallbackClient("http://core", transport=httpx.MockTransport(core))
    delivery = await client.deliver(status_event(job, JobStatus.NOT_PROCESSED, "bad", 0))
    await client.aclose()
    assert delivery.state is EventState.FAILED and calls == 1
    assert delivery.error is not None and "422" in delivery.error


class _ClosedOnArrival(httpcore.AsyncNetworkBackend):
    """Connects for real, then loses the first connection before httpcore looks at it, as
    when core closes or resets a connection just accepted."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()
        self.closed = 0

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(*args, **kwargs)
        if self.closed == 0:
            self.closed += 1
            transport = stream._stream._transport  # type: ignore[attr-defined]
            protocol = stream._stream._protocol  # type: ignore[attr-defined]
            transport.abort()
            # Asking for the socket now would cache it: wait for connection_lost, then one
            # more loop iteration for uvloop to release the handle.
            for _ in range(100):
                await asyncio.sleep(0)
                if protocol.read_event.is_set():
                    break
            await asyncio.sleep(0)
            assert transport.get_extra_info("socket") is None
        return stream

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def test_a_connection_lost_as_it_opens_is_retried_like_any_transport_error(
    recording_core: RecordingCore,
) -> None:
    async def deliver() -> tuple[Delivery, int]:
        transport = httpx.AsyncHTTPTransport()
        backend = _ClosedOnArrival()
        transport._pool._network_backend = backend
        client = CallbackClient(
            recording_core.url, backoff_initial=0.001, backoff_max=0.002, transport=transport
        )
        job = Job("j1", "http://a/v.mp4", None, JobStatus.RUNNING, Progress(), None, 1, 0.0)
        try:
            return await client.deliver(
                status_event(job, JobStatus.PROCESSED, None, 0)
            ), backend.closed
        finally:
            await client.aclose()

    # uvicorn runs the service under uvloop, whose closed transports have no socket.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        delivery, closed = runner.run(deliver())
    assert closed == 1
    assert delivery.state is EventState.DELIVERED and delivery.attempts == 2
    assert list(recording_core.events) == ["j1:status"]


def test_every_setting_is_in_the_configuration_table() -> None:
    table = (Path(__file__).parent.parent / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`DESCRIBER_{name.upper()}`" not in table]
    assert not missing, f"document these settings in README.md: {missing}"


async def _outbox_with_one_callback(
    store: AnyStore, core: Any
) -> tuple[OutboxDispatcher, CallbackClient]:
    job = (await store.add_job(JobRequest("http://a/v.mp4"), max_queued=9, retry_after=1)).job
    await store.add_description(job.id, description(0), description_event(job, description(0)))
    client = CallbackClient(
        "http://core", backoff_initial=30.0, backoff_max=60.0, transport=httpx.MockTransport(core)
    )
    outbox = OutboxDispatcher(store, client, Metrics(), poll_interval=60.0)
    outbox.start()
    return outbox, client


async def test_dispatchers_of_several_processes_deliver_each_callback_once_in_order(
    postgres_url: str,
) -> None:
    # Two processes' stores and outboxes on one database, both woken for every job.
    stores = [PostgresJobStore(postgres_url), PostgresJobStore(postgres_url)]
    for opened in stores:
        await opened.open()
    received: list[str] = []
    all_in = asyncio.Event()

    async def core(request: httpx.Request) -> httpx.Response:
        received.append(request.headers[EVENT_ID_HEADER])
        await asyncio.sleep(0.005)  # a core that takes a moment: deliveries overlap
        if len(received) >= 12:
            all_in.set()
        return httpx.Response(200)

    jobs = []
    for n in range(3):
        job = (
            await stores[0].add_job(JobRequest(f"http://a/{n}.mp4"), max_queued=9, retry_after=1)
        ).job
        jobs.append(job)
        for scene in range(4):
            d = description(scene)
            await stores[n % 2].add_description(job.id, d, description_event(job, d))
    clients = [CallbackClient("http://core", transport=httpx.MockTransport(core)) for _ in stores]
    outboxes = [
        OutboxDispatcher(opened, client, Metrics(), poll_interval=0.05)
        for opened, client in zip(stores, clients, strict=True)
    ]
    try:
        for outbox in outboxes:
            outbox.start()
        await asyncio.wait_for(all_in.wait(), 30)
    finally:
        for outbox, client in zip(outboxes, clients, strict=True):
            await outbox.stop()  # settles what is on the wire
            await client.aclose()
    try:
        counts = await stores[1].count_events()
        assert (counts[EventState.PENDING], counts[EventState.DELIVERED]) == (0, 12)
    finally:
        for opened in stores:
            await opened.close()
    assert len(received) == len(set(received)) == 12
    for job in jobs:
        mine = [event for event in received if event.startswith(job.id)]
        assert mine == [f"{job.id}:description:{scene}" for scene in range(4)]


async def test_stopping_the_outbox_lets_a_callback_on_the_wire_finish_and_settles_it(
    store: AnyStore,
) -> None:
    # Cut off, core may have taken it without our knowing: the next start would send it again.
    arrived, release = asyncio.Event(), asyncio.Event()

    async def core(request: httpx.Request) -> httpx.Response:
        arrived.set()
        await release.wait()
        return httpx.Response(200)

    outbox, client = await _outbox_with_one_callback(store, core)
    await asyncio.wait_for(arrived.wait(), 30)
    stopping = asyncio.create_task(outbox.stop())  # runs before core answers
    release.set()
    await asyncio.wait_for(stopping, 30)
    await client.aclose()
    counts = await store.count_events()
    assert (counts[EventState.DELIVERED], counts[EventState.PENDING]) == (1, 0)


async def test_stopping_the_outbox_ends_a_wait_between_tries_at_once(
    store: AnyStore,
) -> None:
    refused = asyncio.Event()

    async def core(request: httpx.Request) -> httpx.Response:
        refused.set()
        return httpx.Response(503)

    outbox, client = await _outbox_with_one_callback(store, core)
    await asyncio.wait_for(refused.wait(), 30)
    # The next try is 30 s away; stopping does not wait for it.
    await asyncio.wait_for(outbox.stop(), 10)
    await client.aclose()
    assert (await store.count_events())[EventState.PENDING] == 1
