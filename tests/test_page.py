"""The review page in a real browser (Debian's Chromium driven by Playwright) against the real
service with the tiny model: submit by keyboard, follow progress, play with the description
track, edit, approve, extended mode, axe-core, the bearer token; and a screenshot."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.fixtures.core import RecordingCore
from tests.fixtures.media import MadeVideo
from tests.fixtures.models import ScriptedCaptioner
from tests.test_service_api import LiveService, service_settings

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
#: Where the screenshot of a finished job goes (ignored by git).
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
SUBTITLES = "1\n00:00:08,000 --> 00:00:09,000\nHello there.\n"

#: Stands in for the browser's speech synthesis: records each utterance, fires its ``start``
#: at once and its ``end`` when the test calls ``__speech.finish()``; both events record
#: whether the film was paused and where it stood.
SPEECH_STUB = """
(() => {
  const video = () => document.querySelector('#video');
  const log = [];
  const pending = [];
  const note = (event, u) => log.push({event, text: u.text, lang: u.lang,
    paused: video().paused, time: video().currentTime});
  window.__speech = {log, finish() {
    const u = pending.shift();
    u.dispatchEvent(new Event('end'));
    note('end', u);
  }};
  const stub = {speaking: false, pending: false, paused: false,
    speak(u) { pending.push(u); u.dispatchEvent(new Event('start')); note('start', u); },
    cancel() {}, pause() {}, resume() {}, getVoices() { return []; }};
  Object.defineProperty(window, 'speechSynthesis', {value: stub, configurable: true});
})();
"""


#: Keeps every text the progress live region announced, in ``window.__announced``.
PROGRESS_LOG = """
window.__announced = [];
document.addEventListener('DOMContentLoaded', () => {
  const region = document.querySelector('#progress-text');
  new MutationObserver(() => window.__announced.push(region.textContent))
    .observe(region, {childList: true, characterData: true, subtree: true});
});
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless; Playwright downloads no browser."""
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: run `bash scripts/install.sh --dev` as root")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.add_init_script(SPEECH_STUB)
    context.add_init_script(PROGRESS_LOG)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"the page raised: {errors}"


def review_of(service: LiveService, job_id: str) -> list[dict[str, Any]]:
    """The job's descriptions as the review API has them now."""
    descriptions: list[dict[str, Any]] = service.http.get(f"/jobs/{job_id}/review").json()[
        "descriptions"
    ]
    return descriptions


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is."""
    page.add_script_tag(path=str(AXE))
    results: dict[str, Any] = page.evaluate("axe.run()")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_submit_follow_play_edit_extended_approve_by_keyboard(
    tmp_path: Path,
    tiny_blip_dir: Path,
    file_server: tuple[str, Path],
    six_scene_video: MadeVideo,
    recording_core: RecordingCore,
    page: Page,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, root = file_server
    shutil.copy(six_scene_video.path, root / "six.mp4")
    (root / "six.srt").write_text(SUBTITLES)
    settings = service_settings(
        tmp_path,
        model=str(tiny_blip_dir),
        device="cpu",
        local_files_only=True,
        core_url=recording_core.url,
        novelty_threshold=1.0,
    )
    service = LiveService(settings, None).start()
    try:
        page.goto(service.url)
        # Keyboard only: the film's URL is the first field, Enter submits.
        page.keyboard.press("Tab")
        expect(page.locator("#url")).to_be_focused()
        page.keyboard.type(f"{base}/six.mp4")
        page.keyboard.press("Tab")
        page.keyboard.type(f"{base}/six.srt")
        page.keyboard.press("Enter")

        expect(page.locator("#submit-message")).to_contain_text("queued")
        (job_id,) = [j["job_id"] for j in service.http.get("/jobs").json()["jobs"]]
        # Progress arrives through the event stream into the live region.
        region = page.locator("#progress-region")
        assert region.get_attribute("aria-live") == "polite"
        expect(page.locator("#progress-text")).to_contain_text(
            f"Job {job_id}: processed, 6 scenes found", timeout=120_000
        )
        announced = page.evaluate("window.__announced")
        assert any(text.startswith(f"Job {job_id}: running, ") for text in announced), announced
        recording_core.wait_final(job_id)
        expect(page.locator("#player-heading")).to_be_focused()

        # The player's description track holds the job's descriptions.
        review = service.http.get(f"/jobs/{job_id}/review").json()
        assert review["descriptions"], "the tiny model described nothing"
        cues = track_cues(page)
        assert [c["text"] for c in cues] == [d["text"] for d in review["descriptions"]]
        assert page.evaluate("document.querySelector('#video track').kind") == "descriptions"

        # Edit the first description by keyboard; the API serves the edit.
        first = page.locator(".cue textarea").first
        first.focus()
        page.keyboard.press("ControlOrMeta+A")
        page.keyboard.type("A red curtain rises.")
        page.keyboard.press("Tab")
        expect(page.locator(".cue button[type=submit]").first).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#review-message")).to_have_text("Description 1 saved.")
        vtt = service.http.get(f"/jobs/{job_id}/descriptions", params={"format": "vtt"}).text
        assert "A red curtain rises." in vtt
        page.wait_for_function(
            "[...document.querySelector('#video track').track.cues]"
            ".some(c => c.text === 'A red curtain rises.')"
        )

        check_extended_mode(page, track_cues(page)[0])

        # Insert at the playhead, then delete it again, by keyboard. An insert may not overlap
        # another description: the one under the playhead now starts 1.5 s after it.
        playhead = page.evaluate("document.querySelector('#video').currentTime")
        (under,) = [d for d in review_of(service, job_id) if d["start"] <= playhead < d["end"]]
        service.http.patch(
            f"/jobs/{job_id}/descriptions/{under['id']}",
            json={"version": under["version"], "start": playhead + 1.5},
        ).raise_for_status()
        page.locator("#insert-text").focus()
        page.keyboard.type("A door opens.")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        expect(page.locator("#review-message")).to_contain_text("Description inserted at")
        (inserted,) = [
            d
            for d in service.http.get(f"/jobs/{job_id}/review").json()["descriptions"]
            if d["origin"] == "reviewer"
        ]
        assert (inserted["text"], inserted["start"]) == ("A door opens.", pytest.approx(playhead))
        page.wait_for_function(
            "[...document.querySelector('#video track').track.cues]"
            ".some(c => c.text === 'A door opens.')"
        )
        page.locator(f'.cue[data-id="{inserted["id"]}"] button.delete').focus()
        page.keyboard.press("Enter")
        expect(page.locator("#review-message")).to_contain_text("deleted")
        assert (
            "A door opens."
            not in service.http.get(f"/jobs/{job_id}/descriptions", params={"format": "vtt"}).text
        )

        # Approve by keyboard: core gets the final set with the edit.
        revision = service.http.get(f"/jobs/{job_id}/review").json()["revision"]
        page.locator("#approve").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#review-message")).to_contain_text("sent to core")
        approved = f"{job_id}:approved:{revision}"
        recording_core.wait_for(lambda core: approved in core.events)
        texts = [d["text"] for d in recording_core.events[approved].json["descriptions"]]
        assert texts[0] == "A red curtain rises."

        assert serious_violations(page) == []
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "page-finished-job.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        with capsys.disabled():
            print(f"\nscreenshot of the page with a finished job: {shot}")
    finally:
        page.close()
        service.stop()


def track_cues(page: Page) -> list[dict[str, Any]]:
    cues: list[dict[str, Any]] = page.evaluate(
        "[...document.querySelector('#video track').track.cues]"
        ".map(c => ({start: c.startTime, end: c.endTime, text: c.text}))"
    )
    return cues


def check_extended_mode(page: Page, cue: dict[str, Any]) -> None:
    """With extended mode on, the film pauses while the first cue is spoken and plays on
    after."""
    page.locator("#extended").focus()
    page.keyboard.press("Space")
    expect(page.locator("#extended")).to_be_checked()
    page.locator(".cue button.seek").first.focus()  # "Play from here"
    page.keyboard.press("Enter")
    page.wait_for_function("window.__speech.log.length > 0", timeout=30_000)
    started = page.evaluate("window.__speech.log[0]")
    assert (started["event"], started["text"], started["lang"]) == ("start", cue["text"], "en")
    assert started["paused"] is True
    page.evaluate("window.__speech.finish()")
    # Paused while it spoke: the film stood where the description started.
    ended = page.evaluate("window.__speech.log[1]")
    assert ended["event"] == "end" and ended["time"] == pytest.approx(started["time"], abs=0.05)
    page.wait_for_function("!document.querySelector('#video').paused")
    page.evaluate("document.querySelector('#video').pause()")


def test_with_a_token_the_page_asks_for_it_and_keeps_it_for_the_tab_only(
    tmp_path: Path, browser: Browser
) -> None:
    settings = service_settings(tmp_path, api_token="page-token-123")
    service = LiveService(settings, ScriptedCaptioner()).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(service.url)
        expect(page.locator("#token")).to_be_focused()
        assert serious_violations(page) == []
        page.keyboard.type("page-token-123")
        page.keyboard.press("Enter")
        expect(page.locator("#token-section")).to_be_hidden()
        expect(page.locator("#submit-message")).to_have_text("")
        assert page.evaluate("sessionStorage.getItem('describer-token')") == "page-token-123"
        assert page.evaluate("localStorage.length") == 0
        # A new tab does not have it.
        other = context.new_page()
        other.goto(service.url)
        expect(other.locator("#token")).to_be_focused()
    finally:
        context.close()
        service.stop()


def test_a_film_the_browser_cannot_reach_plays_from_the_service_s_copy(
    tmp_path: Path, file_server: tuple[str, Path], six_scene_video: MadeVideo, page: Page
) -> None:
    base, root = file_server
    shutil.copy(six_scene_video.path, root / "six.mp4")
    service = LiveService(service_settings(tmp_path), ScriptedCaptioner()).start()
    try:
        job_id = service.submit(f"{base}/six.mp4", audio=True)
        assert service.wait_done(job_id)["status"] == "processed"
        # The service reaches the film; this browser does not.
        page.route(f"{base}/six.mp4", lambda route: route.abort())
        page.goto(service.url)
        page.get_by_role("button", name=f"Open job {job_id}").click()
        expect(page.locator("#now-speaking")).to_have_text(
            "Playing the service's copy of the film."
        )
        page.wait_for_function("document.querySelector('#video').readyState >= 1")
        source, duration = page.evaluate(
            "(video => [video.currentSrc, video.duration])(document.querySelector('#video'))"
        )
        assert source == f"{service.url}/jobs/{job_id}/media"
        assert duration == pytest.approx(20.0, abs=0.2)
    finally:
        service.stop()
