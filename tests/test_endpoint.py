"""The ``openai`` captioner against a fake OpenAI-compatible endpoint on 127.0.0.1: what
each request carries (frames, dialogue, previous descriptions, budget, language), retries,
refusals and timeouts, through the real pipeline, the CLI and the service."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from app.cli import main
from app.config import Settings
from app.errors import EndpointError, ModelLoadError
from app.models import CaptionOptions, CaptionRequest, load_captioner
from app.models.captioners.remote import ChatEndpointCaptioner
from app.pipeline.describe import DescribeOptions, MediaOptions, SpeechSource, describe_media
from app.pipeline.frames import FrameSelector
from tests.fixtures.chat import SERVED, ChatEndpoint, completion
from tests.fixtures.media import MadeVideo, make_coded_video
from tests.fixtures.models import dominant_colour, solid_image

SCENE_COLOURS = ("red", "green", "blue", "yellow")
#: One line before each 4 s scene's pause: the pause of scene i is [4i + 1, 4i + 4).
LINES = ("Where are you going?", "To the station.", "Wait for me!", "Hurry up, the train!")
#: What the endpoint answers in Russian: each longer than the 7 words a pause holds.
RUSSIAN = (
    "Мужчина в сером пальто медленно идёт по мокрой улице к старому дому",
    "Женщина открывает красную дверь и входит в тёмную комнату с окном",
    "Синяя машина останавливается у вокзала под сильным дождём вечером",
    "Жёлтый поезд отходит от платформы, на которой стоит девочка",
)


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> tuple[MadeVideo, Path]:
    """16 s: four 4 s scenes of solid colours, and subtitles with a line at each scene's start."""
    folder = tmp_path_factory.mktemp("endpoint")
    video = make_coded_video(folder / "four.mp4", [(c, 100) for c in SCENE_COLOURS])
    cues = [
        f"{i + 1}\n00:00:{4 * i:02d},000 --> 00:00:{4 * i + 1:02d},000\n{line}\n"
        for i, line in enumerate(LINES)
    ]
    subtitles = folder / "four.srt"
    subtitles.write_text("\n".join(cues), encoding="utf-8")
    return video, subtitles


def captioner(endpoint: ChatEndpoint, **options: object) -> Iterator[ChatEndpointCaptioner]:
    loaded = load_captioner(SERVED, CaptionOptions(api_base=endpoint.url, **options))  # type: ignore[arg-type]
    assert isinstance(loaded, ChatEndpointCaptioner)
    try:
        yield loaded
    finally:
        loaded.close()


def test_each_request_carries_the_scenes_frames_dialogue_previous_descriptions_and_budget(
    chat_endpoint: ChatEndpoint, film: tuple[MadeVideo, Path]
) -> None:
    video, subtitles = film
    texts = [
        "A woman in red opens a door.",
        "Green trees line an empty road.",
        "A blue car stops at a station.",
        "A yellow train pulls away.",
    ]
    chat_endpoint.answer = lambda n: texts[n]
    options = MediaOptions(
        describe=DescribeOptions(batch_size=1), speech_source=SpeechSource.SUBTITLES
    )
    for endpoint_captioner in captioner(chat_endpoint, api_key="sk-test"):
        descriptions = list(
            describe_media(
                str(video.path), endpoint_captioner, subtitles=str(subtitles), options=options
            )
        )

    assert [d.text for d in descriptions] == texts
    assert len(chat_endpoint.requests) == 4
    prompts = chat_endpoint.prompts()
    for index, (body, prompt, description) in enumerate(
        zip(chat_endpoint.requests, prompts, descriptions, strict=True)
    ):
        assert body["model"] == SERVED
        assert chat_endpoint.headers[index]["Authorization"] == "Bearer sk-test"
        # Three frames per scene by default, all from inside the scene.
        frames = chat_endpoint.images(index)
        assert len(frames) == 3
        assert {dominant_colour(frame) for frame in frames} == {SCENE_COLOURS[index]}
        # The budget as words, the language, the dialogue around the pause.
        assert description.max_words == 7  # a 3 s pause at 2.5 words a second
        assert "at most 7 words" in prompt
        assert "Write in English" in prompt
        assert f"- {LINES[index]}" in prompt
        if index + 1 < len(LINES):
            assert f"- {LINES[index + 1]}" in prompt
        # Every description accepted before, up to three, oldest first.
        earlier = texts[max(0, index - 3) : index]
        previous = prompt.split("Previous descriptions:\n", 1)[1].split("\n\n", 1)[0]
        assert previous == ("\n".join(f"- {t}" for t in earlier) if earlier else "(none)")
        assert "the image shows" in prompt  # the style rule forbidding it


def test_frames_per_scene_sets_the_image_parts(
    chat_endpoint: ChatEndpoint, film: tuple[MadeVideo, Path]
) -> None:
    video, _ = film
    options = MediaOptions(
        describe=DescribeOptions(frames_per_scene=5), speech_source=SpeechSource.SUBTITLES
    )
    for endpoint_captioner in captioner(chat_endpoint):
        list(describe_media(str(video.path), endpoint_captioner, options=options))
    assert [len(chat_endpoint.images(i)) for i in range(4)] == [5, 5, 5, 5]


@pytest.mark.parametrize("status", [429, 503])
def test_a_busy_endpoint_is_tried_again(chat_endpoint: ChatEndpoint, status: int) -> None:
    chat_endpoint.script.append((status, '{"error": {"message": "busy"}}'))
    for endpoint_captioner in captioner(chat_endpoint, api_backoff=0.01):
        assert endpoint_captioner.caption([solid_image("red")]) == [
            "A person walks past door number 1."
        ]
    assert len(chat_endpoint.requests) == 2


@pytest.mark.parametrize("retry_after", ["3", "{date}"])
def test_a_busy_endpoint_s_retry_after_is_waited(
    chat_endpoint: ChatEndpoint, retry_after: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The backoff (0.01 s) is stretched to what the endpoint asks, in seconds or as a date."""
    import email.utils
    import math
    import time

    # A date has whole seconds: one 30 s after the next whole second, so that the wait
    # computed from it is 30 s less the time the request took (not a second less too).
    deadline = math.ceil(time.time()) + 30
    header = retry_after.format(date=email.utils.formatdate(deadline, usegmt=True))
    chat_endpoint.script.append((429, '{"error": "slow down"}', {"Retry-After": header}))
    for endpoint_captioner in captioner(chat_endpoint, api_backoff=0.01):
        # The wait is computed, not slept through: tenacity's sleep is replaced.
        waits: list[float] = []
        endpoint_captioner._retrying.sleep = waits.append
        assert endpoint_captioner.caption([solid_image("red")])
    assert len(chat_endpoint.requests) == 2
    expected = (3.0, 3.0) if retry_after == "3" else (20.0, 31.0)
    assert len(waits) == 1 and expected[0] <= waits[0] <= expected[1]


def test_loading_checks_that_the_endpoint_serves_the_model(chat_endpoint: ChatEndpoint) -> None:
    with pytest.raises(ModelLoadError, match=r"does not serve 'other-vlm'.*serves: 'served-vlm'"):
        load_captioner("other-vlm", CaptionOptions(api_base=chat_endpoint.url))
    chat_endpoint.models = (401, '{"error": "bad key"}')
    with pytest.raises(ModelLoadError, match=r"HTTP 401 \(check DESCRIBER_API_KEY\)"):
        load_captioner(SERVED, CaptionOptions(api_base=chat_endpoint.url))
    # An endpoint without /models is taken on trust; its first answer will tell.
    chat_endpoint.models = (404, '{"error": "no such route"}')
    for endpoint_captioner in captioner(chat_endpoint):
        assert endpoint_captioner.caption([solid_image("red")])


def test_an_endpoint_that_is_down_fails_the_load(unused_tcp_port: int) -> None:
    with pytest.raises(ModelLoadError, match=r"Cannot reach the captioning endpoint .*/v1/models"):
        load_captioner(SERVED, CaptionOptions(api_base=f"http://127.0.0.1:{unused_tcp_port}/v1"))


def test_a_refused_request_says_which_endpoint_and_what_it_answered(
    chat_endpoint: ChatEndpoint,
) -> None:
    chat_endpoint.script.append((400, '{"error": {"message": "model does not take images"}}'))
    for endpoint_captioner in captioner(chat_endpoint):
        with pytest.raises(EndpointError) as failure:
            endpoint_captioner.caption([solid_image("red")])
    message = str(failure.value)
    assert f"{chat_endpoint.url}/chat/completions" in message
    assert "HTTP 400" in message and "model does not take images" in message
    assert len(chat_endpoint.requests) == 1  # a refusal is not tried again


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ("<html>gateway</html>", "not a chat completion"),
        ('{"choices": []}', "not a chat completion"),
        (
            '{"choices": [{"message": {"content": null, "refusal": "I cannot help"}}]}',
            "refused: I cannot help",
        ),
    ],
)
def test_a_broken_answer_is_an_endpoint_error(
    chat_endpoint: ChatEndpoint, answer: str, says: str
) -> None:
    chat_endpoint.script.append((200, answer))
    for endpoint_captioner in captioner(chat_endpoint):
        with pytest.raises(EndpointError, match=says):
            endpoint_captioner.caption([solid_image("red")])


def test_a_hung_endpoint_hits_the_timeout_on_every_try(chat_endpoint: ChatEndpoint) -> None:
    chat_endpoint.hang = True
    for endpoint_captioner in captioner(
        chat_endpoint, api_timeout=0.2, api_max_attempts=2, api_backoff=0
    ):
        with pytest.raises(
            EndpointError, match=r"failed 2 tries; the last: no answer within 0.2 s"
        ):
            endpoint_captioner.caption([solid_image("red")])
    assert len(chat_endpoint.requests) == 2
    chat_endpoint.release.set()


def test_requests_run_concurrently_up_to_the_setting(chat_endpoint: ChatEndpoint) -> None:
    # All four are in flight at once: the handler holds each until the last one arrives.
    chat_endpoint.hang = True
    arrived: list[int] = []

    def answer(n: int) -> str:
        arrived.append(n)
        if len(arrived) == 4:
            chat_endpoint.release.set()
        return f"scene {n}"

    chat_endpoint.answer = answer
    for endpoint_captioner in captioner(chat_endpoint, api_concurrency=4, api_timeout=30):
        texts = endpoint_captioner.caption([solid_image(c) for c in SCENE_COLOURS])
    assert sorted(texts) == ["scene 0", "scene 1", "scene 2", "scene 3"]


def test_russian_end_to_end_through_the_cli(
    chat_endpoint: ChatEndpoint, film: tuple[MadeVideo, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    video, subtitles = film
    monkeypatch.setenv("DESCRIBER_API_KEY", "sk-ru")
    chat_endpoint.answer = lambda n: RUSSIAN[n]
    out = io.StringIO()
    code = main(
        [
            "describe", str(video.path), "-q", "--subtitles", str(subtitles),
            "--api-base", chat_endpoint.url, "--model", SERVED, "--language", "ru",
            "--words-per-second", "2.5",
        ],
        stdout=out,
    )  # fmt: skip
    assert code == 0
    descriptions = json.loads(out.getvalue())
    assert len(descriptions) == 4
    for description, prompt, answer in zip(
        descriptions, chat_endpoint.prompts(), RUSSIAN, strict=True
    ):
        assert "Write in Russian" in prompt
        assert "at most 7 words" in prompt
        # The answer's first words, within the budget (a dangling last word may go).
        words = description["text"].rstrip(".").split()
        assert description["max_words"] == 7
        assert 5 <= len(words) <= 7
        assert words == answer.split()[: len(words)]
        assert description["fits"] is False
    assert chat_endpoint.headers[0]["Authorization"] == "Bearer sk-ru"


def test_a_custom_prompt_template_is_filled_and_sent(
    chat_endpoint: ChatEndpoint, tmp_path: Path
) -> None:
    template = "Say $max_words words in $language ($language_code) about $frames frames."
    for endpoint_captioner in captioner(chat_endpoint, prompt=template):
        endpoint_captioner.caption(
            [solid_image("red")], [CaptionRequest(max_words=5, language="ru")]
        )
    assert chat_endpoint.prompts() == ["Say 5 words in Russian (ru) about 1 frames."]


def test_the_request_body_is_a_chat_completion(chat_endpoint: ChatEndpoint) -> None:
    frames = tuple(solid_image(c, size=(32, 24)) for c in ("red", "blue"))
    for endpoint_captioner in captioner(chat_endpoint, max_new_tokens=50):
        endpoint_captioner.caption([frames[0]], [CaptionRequest(max_words=10, frames=frames)])
    body = chat_endpoint.requests[0]
    assert body["max_tokens"] == 48  # 10 words at 4 tokens each, plus 8
    assert [part["type"] for part in body["messages"][0]["content"]] == [
        "image_url",
        "image_url",
        "text",
    ]
    assert isinstance(Image.open, object) and completion("x")


def test_a_prompt_file_with_an_unknown_placeholder_is_refused_at_startup(tmp_path: Path) -> None:
    bad = tmp_path / "prompt.txt"
    bad.write_text("Describe $plot in $language.", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"unknown placeholders plot; the known ones"):
        Settings(prompt_file=bad)
    good = tmp_path / "good.txt"
    good.write_text("Describe in $language, $max_words words.", encoding="utf-8")
    assert Settings(prompt_file=good).caption_options().prompt == good.read_text()


def test_spread_frames_lie_evenly_inside_each_scene() -> None:
    selector: FrameSelector[int] = FrameSelector(1.0, spread=3)
    closed = []
    for number in range(25 * 30):  # 30 s at 25 fps, a cut at 24 s, reported late
        time = number / 25
        selector.push(time, number)
        if number == 24 * 25 + 5:
            closed.append(selector.cut(24.0))
    closed.append(selector.finish(30.0))
    long, short = closed
    assert long is not None and short is not None
    # Within a sampling step (frames kept 24 / 12 s apart at most) of 4, 12 and 20 s.
    assert [round(t) for t, _ in long.spread] == pytest.approx([4, 12, 20], abs=1)
    assert all(0 <= t < 24 for t, _ in long.spread)
    # 6 s: at most 12 samples kept, about half a second apart.
    assert [t for t, _ in short.spread] == pytest.approx([25, 27, 29], abs=0.5)
    assert all(24 <= t < 30 for t, _ in short.spread)
