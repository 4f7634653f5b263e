"""The review API end to end: a real service on loopback, a film and its subtitles on a file
server, core as a recording server; edits, deletes, inserts, their history and versions, the
approval callback, the job list and the event stream; and the store's upgrade of older files."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app.api import create_app
from app.service.serve import _Server
from app.service.store import SqliteJobStore
from tests.fixtures.core import RecordingCore
from tests.fixtures.media import MadeVideo
from tests.fixtures.models import ScriptedCaptioner
from tests.fixtures.servers import wait_until
from tests.test_service_api import GatedCaptioner, LiveService, WordScorer, service_settings

#: Someone speaks from 8 to 9 s, inside the blue scene (7 to 12 s) of six.mp4.
SUBTITLES = "1\n00:00:08,000 --> 00:00:09,000\nHello there.\n"


@pytest.fixture
def reviewed(
    tmp_path: Path,
    file_server: tuple[str, Path],
    six_scene_video: MadeVideo,
    recording_core: RecordingCore,
) -> Iterator[tuple[LiveService, str]]:
    """A service with core, and the id of a processed job of six.mp4 with subtitles."""
    base, root = file_server
    shutil.copy(six_scene_video.path, root / "six.mp4")
    (root / "six.srt").write_text(SUBTITLES)
    settings = service_settings(tmp_path, core_url=recording_core.url)
    service = LiveService(settings, ScriptedCaptioner()).start()
    try:
        job_id = service.submit(f"{base}/six.mp4", f"{base}/six.srt")
        assert service.wait_done(job_id)["status"] == "processed"
        recording_core.wait_final(job_id)
        yield service, job_id
    finally:
        service.stop()


def review(service: LiveService, job_id: str) -> dict[str, Any]:
    response = service.http.get(f"/jobs/{job_id}/review")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def in_scene(data: dict[str, Any], scene_start: float) -> dict[str, Any]:
    (found,) = [d for d in data["descriptions"] if d["scene_start"] == scene_start]
    return found


def parse_sse(text: str) -> list[dict[str, str]]:
    """The events of a ``text/event-stream`` body, each as its fields (comments dropped)."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and line[0] != ":")
        if fields:
            events.append(fields)
    return events


def vtt(service: LiveService, job_id: str) -> str:
    return service.http.get(f"/jobs/{job_id}/descriptions", params={"format": "vtt"}).text


def test_an_edit_is_versioned_kept_in_history_and_served(
    reviewed: tuple[LiveService, str],
) -> None:
    service, job_id = reviewed
    before = review(service, job_id)
    assert before["status"] == "processed" and before["language"] == "en"
    red = in_scene(before, 0.0)
    assert red["version"] == 1 and red["origin"] == "machine"

    response = service.http.patch(
        f"/jobs/{job_id}/descriptions/{red['id']}",
        json={"version": 1, "text": "A crimson wall.", "start": 0.5, "end": 3.5},
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["warnings"] == []
    assert edited["description"]["version"] == 2
    assert (edited["description"]["start"], edited["description"]["end"]) == (0.5, 3.5)
    assert edited["description"]["max_words"] == 9  # 3 s at 3 words/s

    assert "00:00:00.500 --> 00:00:03.500\nA crimson wall." in vtt(service, job_id)
    assert review(service, job_id)["revision"] == before["revision"] + 1
    history = service.http.get(f"/jobs/{job_id}/descriptions/{red['id']}/history").json()
    assert history["current"]["text"] == "A crimson wall."
    assert [(v["version"], v["text"]) for v in history["previous"]] == [(1, red["text"])]
    assert history["previous"][0]["changed_at"] is not None


async def test_concurrent_edits_of_one_version_save_one_and_refuse_the_other_409(
    reviewed: tuple[LiveService, str],
) -> None:
    service, job_id = reviewed
    green = in_scene(review(service, job_id), 4.0)
    path = f"/jobs/{job_id}/descriptions/{green['id']}"
    async with httpx.AsyncClient(base_url=service.url) as client:
        answers = await asyncio.gather(
            *(client.patch(path, json={"version": 1, "text": f"Edit {n}."}) for n in range(2))
        )
    assert sorted(a.status_code for a in answers) == [200, 409]
    (refused,) = [a for a in answers if a.status_code == 409]
    assert "is at version 2, not 1" in refused.json()["detail"]
    (saved,) = [a for a in answers if a.status_code == 200]
    text = saved.json()["description"]["text"]
    # The stale one changed nothing; a change against the current version goes through.
    assert in_scene(review(service, job_id), 4.0)["text"] == text
    again = service.http.patch(path, json={"version": 2, "text": "Last word."})
    assert again.status_code == 200 and again.json()["description"]["version"] == 3


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"start": 3.0}, "start", "before its scene"),  # green starts at 4 s
        ({"end": 7.5}, "end", "after its scene"),  # green ends at 7 s
        ({"start": 6.0, "end": 5.0}, "end", "must end after it starts"),
        ({"text": "   "}, "text", "needs some words"),
        ({"text": ""}, "text", "at least 1 character"),
        ({"start": -1}, "start", "greater than or equal to 0"),
        ({"version": "two"}, "version", "valid integer"),
        ({"colour": "red"}, "colour", "Extra inputs"),
    ],
)
def test_bad_edits_are_422_naming_the_field(
    reviewed: tuple[LiveService, str], change: dict[str, Any], field: str, words: str
) -> None:
    service, job_id = reviewed
    green = in_scene(review(service, job_id), 4.0)
    response = service.http.patch(
        f"/jobs/{job_id}/descriptions/{green['id']}", json={"version": 1, **change}
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errors"][0]["field"] == field
    assert words in body["detail"]
    assert in_scene(review(service, job_id), 4.0)["version"] == 1


def test_dialogue_is_refused_and_a_long_text_is_a_warning(
    reviewed: tuple[LiveService, str],
) -> None:
    service, job_id = reviewed
    blue = in_scene(review(service, job_id), 7.0)
    path = f"/jobs/{job_id}/descriptions/{blue['id']}"
    over = service.http.patch(path, json={"version": 1, "start": 7.5, "end": 10.0})
    assert over.status_code == 422
    assert over.json()["errors"][0]["field"] == "start"
    assert "overlaps dialogue at 8.000-9.000 s" in over.json()["detail"]

    long = " ".join(["word"] * 20) + "."
    saved = service.http.patch(path, json={"version": 1, "text": long, "start": 9.0, "end": 11.0})
    assert saved.status_code == 200, saved.text
    assert saved.json()["warnings"] == ["text: 20 words; the window holds 6 at 3 words/s"]
    assert saved.json()["description"]["fits"] is False


def test_delete_keeps_history_and_insert_lands_in_its_scene(
    reviewed: tuple[LiveService, str],
) -> None:
    service, job_id = reviewed
    before = review(service, job_id)
    yellow = in_scene(before, 12.0)
    path = f"/jobs/{job_id}/descriptions/{yellow['id']}"
    assert service.http.delete(path).json()["errors"][0]["field"] == "version"
    assert service.http.delete(path, params={"version": 7}).status_code == 409
    deleted = service.http.delete(path, params={"version": 1})
    assert deleted.status_code == 200 and deleted.json()["version"] == 2
    assert yellow["text"] not in vtt(service, job_id)
    assert all(d["id"] != yellow["id"] for d in review(service, job_id)["descriptions"])
    assert service.http.get(f"{path}/history").status_code == 404
    assert service.http.delete(path, params={"version": 2}).status_code == 404

    inserted = service.http.post(
        f"/jobs/{job_id}/descriptions", json={"start": 12.5, "text": "A yellow door opens."}
    )
    assert inserted.status_code == 201, inserted.text
    new = inserted.json()["description"]
    assert (new["scene_index"], new["scene_start"], new["scene_end"]) == (
        yellow["scene_index"],
        12.0,
        14.0,
    )
    assert (new["start"], new["origin"], new["version"]) == (12.5, "reviewer", 1)
    assert new["end"] == pytest.approx(12.5 + 4 / 3)
    assert "A yellow door opens." in vtt(service, job_id)
    over = service.http.post(
        f"/jobs/{job_id}/descriptions", json={"start": 8.5, "text": "Someone talks."}
    )
    assert over.status_code == 422 and over.json()["errors"][0]["field"] == "start"
    # Two descriptions at once would be two voices at once.
    twice = service.http.post(
        f"/jobs/{job_id}/descriptions", json={"start": 13.0, "text": "A cat."}
    )
    assert twice.status_code == 422 and twice.json()["errors"][0]["field"] == "start"
    assert "overlaps another description at 12.500-13.833 s" in twice.json()["detail"]
    past = service.http.post(f"/jobs/{job_id}/descriptions", json={"start": 99, "text": "Late."})
    assert past.status_code == 422 and "not inside the video" in past.json()["detail"]
    missing = service.http.patch(f"/jobs/{job_id}/descriptions/999", json={"version": 1})
    assert missing.status_code == 404
    assert service.http.get(f"/jobs/{job_id}/descriptions/999/history").status_code == 404


def test_approve_sends_the_final_set_once_per_revision(
    reviewed: tuple[LiveService, str], recording_core: RecordingCore
) -> None:
    service, job_id = reviewed
    red = in_scene(review(service, job_id), 0.0)
    service.http.patch(
        f"/jobs/{job_id}/descriptions/{red['id']}", json={"version": 1, "text": "A red room."}
    ).raise_for_status()
    current = review(service, job_id)

    approved = service.http.post(f"/jobs/{job_id}/approve")
    assert approved.status_code == 200, approved.text
    event_id = f"{job_id}:approved:{current['revision']}"
    assert approved.json() == {
        "job_id": job_id,
        "event_id": event_id,
        "revision": current["revision"],
        "descriptions": len(current["descriptions"]),
        "created": True,
        "rendering": False,  # the job has no audio
    }
    recording_core.wait_for(lambda core: event_id in core.events)
    received = recording_core.events[event_id]
    assert received.path == f"/jobs/{job_id}/approved"
    assert received.headers["x-describer-event-type"] == "approval"
    body = received.json
    assert (body["type"], body["revision"]) == ("approval", current["revision"])
    fields = set(body["descriptions"][0])
    assert body["descriptions"] == [
        {k: v for k, v in d.items() if k in fields} for d in current["descriptions"]
    ]
    assert body["descriptions"][0]["text"] == "A red room."

    again = service.http.post(f"/jobs/{job_id}/approve")
    assert again.json()["created"] is False and again.json()["event_id"] == event_id
    assert [r.event_id for r in recording_core.requests].count(event_id) == 1


def test_review_needs_a_processed_job_and_approval_a_core(
    tmp_path: Path, file_server: tuple[str, Path], six_scene_video: MadeVideo
) -> None:
    base, root = file_server
    shutil.copy(six_scene_video.path, root / "six.mp4")
    service = LiveService(service_settings(tmp_path), ScriptedCaptioner()).start()
    try:
        job_id = service.submit(f"{base}/six.mp4")
        service.wait_done(job_id)
        refused = service.http.post(f"/jobs/{job_id}/approve")
        assert refused.status_code == 409 and "no core_url" in refused.json()["detail"]
        assert service.http.get("/jobs/nope/review").status_code == 404
        assert service.http.get("/jobs/nope/events").status_code == 404
    finally:
        service.stop()


def test_the_job_list_and_the_event_stream_of_a_finished_job(
    reviewed: tuple[LiveService, str],
) -> None:
    service, job_id = reviewed
    jobs = service.http.get("/jobs").json()["jobs"]
    assert [(j["job_id"], j["status"]) for j in jobs] == [(job_id, "processed")]
    assert service.http.get("/jobs", params={"limit": 0}).status_code == 422

    with service.http.stream("GET", f"/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())
    events = parse_sse(text)
    assert [(e["event"], e["id"]) for e in events] == [("job", "1"), ("end", "2")]
    summary = json.loads(events[0]["data"])
    assert (summary["job_id"], summary["status"]) == (job_id, "processed")
    assert summary["progress"]["stage"] == "done"


async def test_an_older_store_file_gets_description_ids_and_versions(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE jobs (id TEXT PRIMARY KEY, url TEXT NOT NULL, subtitles TEXT,
                status TEXT NOT NULL, progress TEXT NOT NULL DEFAULT '{}', reason TEXT,
                attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
                started_at REAL, finished_at REAL);
            CREATE TABLE descriptions (job_id TEXT NOT NULL REFERENCES jobs (id),
                scene_index INTEGER NOT NULL, start_time REAL NOT NULL, data TEXT NOT NULL,
                PRIMARY KEY (job_id, scene_index));
            INSERT INTO jobs (id, url, status, created_at)
                VALUES ('j', 'http://a/v', 'processed', 1);
            """
        )
        for index in (1, 0):
            data = {
                "start": index * 2.0,
                "end": index * 2.0 + 1,
                "frame_time": index * 2.0,
                "scene_index": index,
                "scene_start": index * 2.0,
                "scene_end": index * 2.0 + 2,
                "text": f"Scene {index}.",
                "similarity": 0.0,
                "max_words": 3,
                "fits": True,
            }
            conn.execute(
                "INSERT INTO descriptions VALUES ('j', ?, ?, ?)",
                (index, index * 2.0, json.dumps(data)),
            )
    store = SqliteJobStore(path)
    await store.open()
    try:
        stored, revision = await store.review_state("j")
        assert [(d.id, d.version, d.description.text) for d in stored] == [
            (1, 1, "Scene 0."),
            (2, 1, "Scene 1."),
        ]
        assert revision == 2
        # A job run again still cannot add a machine description of a scene twice.
        assert not await store.add_description("j", stored[0].description, None)
    finally:
        await store.close()
    again = SqliteJobStore(path)  # opening an upgraded file changes nothing
    await again.open()
    try:
        assert [d.id for d in (await again.review_state("j"))[0]] == [1, 2]
    finally:
        await again.close()


def test_shutdown_ends_open_event_streams_at_once(
    tmp_path: Path, file_server: tuple[str, Path], six_scene_video: MadeVideo
) -> None:
    base, root = file_server
    shutil.copy(six_scene_video.path, root / "six.mp4")
    (root / "six.srt").write_text(SUBTITLES)
    captioner = GatedCaptioner()
    app = create_app(service_settings(tmp_path), captioner, scorer=WordScorer())
    sock = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = _Server(uvicorn.Config(app, log_config=None, access_log=False), app)
    serving = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    serving.start()
    received: list[str] = []
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            wait_until(lambda: http.get("/readyz").status_code == 200, what="ready")
            http.post("/process", json={"url": f"{base}/six.mp4"}).raise_for_status()
            assert captioner.entered.wait(30)
            queued = http.post(
                "/process", json={"url": f"{base}/six.mp4", "subtitles": f"{base}/six.srt"}
            )
            job_id = queued.json()["job_id"]

            def follow() -> None:
                with httpx.stream("GET", f"{url}/jobs/{job_id}/events", timeout=60) as stream:
                    received.extend(stream.iter_text())

            reader = threading.Thread(target=follow)
            reader.start()
            wait_until(lambda: received, what="the first event")
            server.should_exit = True
            reader.join(timeout=10)
            assert not reader.is_alive(), "the event stream held the shutdown"
        events = parse_sse("".join(received))
        assert [(e["event"], json.loads(e["data"])["status"]) for e in events] == [
            ("job", "queued")
        ]
    finally:
        captioner.gate.set()
        server.should_exit = True
        serving.join(timeout=60)
        sock.close()
    assert not serving.is_alive()
