"""Local chat vision-language models (the vlm.py kinds) through the real load path and
the real pipeline, on tiny random SmolVLM and Gemma 3 models built here: random words, real
code."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import Qwen2VLConfig

from app.errors import ModelLoadError
from app.models import CaptionOptions, CaptionRequest, load_captioner
from app.models.captioners import CAPTIONERS
from app.models.captioners.vlm import ChatVLMCaptioner
from app.models.hub import ModelSource, model_type
from app.models.loader import kind_for_model_type
from app.pipeline.describe import DescribeOptions, describe
from app.pipeline.types import Progress, Stage
from tests.fixtures.media import VideoFactory
from tests.fixtures.models import solid_image

#: Enough tokens that every answer has a word; few, so that the tests stay fast.
OPTIONS = CaptionOptions(num_beams=1, max_new_tokens=6, min_new_tokens=4)


@pytest.fixture(params=["tiny_smolvlm_dir", "tiny_gemma3_dir"])
def vlm_dir(request: pytest.FixtureRequest) -> Path:
    """Each tested family's tiny model directory."""
    directory: Path = request.getfixturevalue(request.param)
    return directory


def load(directory: Path, **changes: object) -> ChatVLMCaptioner:
    options = CaptionOptions(**{**OPTIONS.__dict__, **changes})  # type: ignore[arg-type]
    captioner = load_captioner(str(directory), options)
    assert isinstance(captioner, ChatVLMCaptioner)
    return captioner


def test_config_json_picks_the_smolvlm_kind_and_its_prompt_goes_in(
    tiny_smolvlm_dir: Path,
) -> None:
    captioner = load(tiny_smolvlm_dir)
    assert captioner.frames_per_scene == 3
    assert captioner.processor.tokenizer.padding_side == "left"
    frames = (solid_image("red"), solid_image("blue"))
    request = CaptionRequest(max_words=6, language="ru", frames=frames, dialogue=("Hello.",))
    turn = captioner.conversation(solid_image("green"), request)[0]["content"]
    assert [part["type"] for part in turn] == ["image", "image", "text"]
    assert turn[0]["image"] is frames[0]
    assert "Write in Russian, at most 6 words" in turn[-1]["text"]
    assert "- Hello." in turn[-1]["text"]


@pytest.mark.parametrize(
    ("fixture", "kind"), [("tiny_smolvlm_dir", "smolvlm"), ("tiny_gemma3_dir", "gemma3")]
)
def test_config_json_picks_the_family_s_kind(
    request: pytest.FixtureRequest, fixture: str, kind: str
) -> None:
    directory = request.getfixturevalue(fixture)
    assert kind_for_model_type(model_type(ModelSource(str(directory))), str(directory)) == kind
    captioner = load(directory)
    assert (captioner.frames_per_scene, captioner.languages) == (3, None)


def test_a_scene_gets_the_same_words_alone_or_in_a_left_padded_batch(vlm_dir: Path) -> None:
    captioner = load(vlm_dir, batch_size=3)
    images = [solid_image(c) for c in ("red", "green", "blue")]
    # Prompts of different lengths: one frame, three frames, dialogue.
    requests = [
        CaptionRequest(max_words=4),
        CaptionRequest(max_words=4, frames=tuple(images)),
        CaptionRequest(max_words=4, dialogue=("Where is the train?", "Gone.")),
    ]
    together = captioner.caption(images, requests)
    alone = [captioner.caption([i], [r])[0] for i, r in zip(images, requests, strict=True)]
    assert together == alone
    assert all(text for text in together)


def test_the_pipeline_runs_to_the_end_with_three_frames_a_scene(
    vlm_dir: Path, coded_video: VideoFactory
) -> None:
    made = coded_video([("red", 75), ("green", 75), ("blue", 75)])
    captioner = load(vlm_dir)
    seen: list[Progress] = []
    options = DescribeOptions(similar_frame_threshold=None, novelty_threshold=1.0)
    results = list(describe(made.path, captioner, options=options, on_progress=seen.append))
    assert seen[-1].stage is Stage.DONE
    assert seen[-1].scenes_captioned == 3
    # A random model may say the same for every scene: the repeats are dropped.
    assert len(results) + seen[-1].captions_dropped == 3
    assert results and all(d.text and len(d.text.split()) <= d.max_words for d in results)


def test_a_qwen_vl_model_needs_torchvision_and_says_so(tmp_path: Path) -> None:
    if "qwen-vl" in CAPTIONERS:
        pytest.skip("torchvision is installed: the qwen-vl kind is available")
    Qwen2VLConfig().save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match=r"qwen2_vl.*qwen-vl \(needs torchvision\)"):
        load_captioner(str(tmp_path), OPTIONS)
