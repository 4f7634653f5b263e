"""Local chat vision-language models (the vlm.py kinds) through the real load path and the
real pipeline, the command line and the service, on a tiny random model of each family built
here (SmolVLM, SmolVLM2, Gemma 3, Qwen2-VL, Qwen2.5-VL, Qwen3-VL): random words, real code."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

import pytest
import torch
from PIL import Image
from transformers import Qwen2VLConfig

from app.cli import main
from app.errors import ModelLoadError
from app.models import CaptionOptions, CaptionRequest, load_captioner
from app.models.captioners.vlm import ChatVLMCaptioner
from app.models.hub import ModelSource, model_type
from app.models.loader import kind_for_model_type
from app.pipeline.describe import DescribeOptions, describe
from app.pipeline.types import Progress, Stage
from tests.fixtures.media import VideoFactory
from tests.fixtures.models import TinyVLM, solid_image
from tests.test_service_api import LiveService, service_settings

#: Enough tokens that every answer has a word; few, so that the tests stay fast.
OPTIONS = CaptionOptions(num_beams=1, max_new_tokens=6, min_new_tokens=4)
#: Three one-colour scenes of 3 s each.
SCENES = [("red", 75), ("green", 75), ("blue", 75)]


def load(directory: Path, **changes: object) -> ChatVLMCaptioner:
    options = CaptionOptions(**{**OPTIONS.__dict__, **changes})  # type: ignore[arg-type]
    captioner = load_captioner(str(directory), options)
    assert isinstance(captioner, ChatVLMCaptioner)
    return captioner


def test_config_json_picks_the_family_s_kind_and_the_prompt_goes_in(tiny_vlm: TinyVLM) -> None:
    directory = str(tiny_vlm.directory)
    assert kind_for_model_type(model_type(ModelSource(directory)), directory) == tiny_vlm.kind
    captioner = load(tiny_vlm.directory)
    assert (captioner.frames_per_scene, captioner.languages) == (3, None)
    assert captioner.processor.tokenizer.padding_side == "left"
    frames = (solid_image("red"), solid_image("blue"))
    request = CaptionRequest(max_words=6, language="ru", frames=frames, dialogue=("Hello.",))
    turn = captioner.conversation(solid_image("green"), request)[0]["content"]
    assert [part["type"] for part in turn] == ["image", "image", "text"]
    assert turn[0]["image"] is frames[0]
    assert "Write in Russian, at most 6 words" in turn[-1]["text"]
    assert "- Hello." in turn[-1]["text"]


def first_logits(
    captioner: ChatVLMCaptioner,
    images: Sequence[Image.Image],
    requests: Sequence[CaptionRequest],
) -> torch.Tensor:
    """The logits of each scene's first answer token, as the captioner's ``generate`` call
    computes them (one row per scene). A random model often says the same words whatever
    it is shown; its logits still tell inputs apart."""
    with torch.inference_mode():
        output = captioner.model.generate(
            **captioner.encode(images, requests),
            max_new_tokens=1,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    logits: torch.Tensor = output.logits[0]
    return logits


def differ(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two rows of logits differ by far more than float32 rounding (~1e-7 here)."""
    return bool((a - b).abs().max() > 1e-4)


def test_each_frame_of_a_scene_reaches_the_model_as_image_tokens(tiny_vlm: TinyVLM) -> None:
    captioner = load(tiny_vlm.directory, batch_size=2)
    frames = tuple(solid_image(c) for c in ("red", "green", "blue"))
    requests = [CaptionRequest(max_words=4), CaptionRequest(max_words=4, frames=frames)]
    model = captioner.model
    with mock.patch.object(model, "generate", wraps=model.generate) as generate:
        captioner.caption([frames[0], frames[0]], requests)
    generate.assert_called_once()
    # One scene per row, padded on the left; the image placeholders become image features.
    ids = generate.call_args.kwargs["input_ids"]
    per_scene = (ids == model.config.image_token_id).sum(dim=1).tolist()
    assert per_scene[0] > 0
    assert per_scene == [per_scene[0], 3 * per_scene[0]]
    # What the frames show changes what the model says.
    red, green = first_logits(captioner, frames[:2], [CaptionRequest(max_words=4)] * 2)
    assert differ(red, green)


def test_a_scene_gets_the_same_words_alone_or_in_a_left_padded_batch(tiny_vlm: TinyVLM) -> None:
    captioner = load(tiny_vlm.directory, batch_size=3)
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
    # The same holds for the logits, which differ from scene to scene (so a padding error,
    # a shifted position or a masked image, would show even where the words do not).
    batch = first_logits(captioner, images, requests)
    for row, (image, request) in enumerate(zip(images, requests, strict=True)):
        assert not differ(batch[row], first_logits(captioner, [image], [request])[0])
    assert differ(batch[0], batch[1]) and differ(batch[0], batch[2])


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_half_precision_model_takes_its_frames_in_its_dtype(
    tiny_vlm: TinyVLM, dtype: str
) -> None:
    # What "auto" picks on a GPU (bfloat16, float16 where it lacks that), here on the CPU.
    captioner = load(tiny_vlm.directory, dtype=dtype)
    assert captioner.dtype == getattr(torch, dtype)
    frames = tuple(solid_image(c) for c in ("red", "green", "blue"))
    inputs = captioner.encode([frames[0]], [CaptionRequest(frames=frames)])
    assert {v.dtype for v in inputs.values() if torch.is_floating_point(v)} == {captioner.dtype}
    (text,) = captioner.caption([frames[0]], [CaptionRequest(max_words=4, frames=frames)])
    assert text


def test_the_pipeline_runs_to_the_end_with_three_frames_a_scene(
    tiny_vlm: TinyVLM, coded_video: VideoFactory
) -> None:
    made = coded_video(SCENES)
    captioner = load(tiny_vlm.directory)
    seen: list[Progress] = []
    options = DescribeOptions(similar_frame_threshold=None, novelty_threshold=1.0)
    results = list(describe(made.path, captioner, options=options, on_progress=seen.append))
    assert seen[-1].stage is Stage.DONE
    assert seen[-1].scenes_captioned == 3
    # A random model may say the same for every scene: the repeats are dropped.
    assert len(results) + seen[-1].captions_dropped == 3
    assert results and all(d.text and len(d.text.split()) <= d.max_words for d in results)


def test_the_command_line_describes_a_film_with_the_model_from_its_directory(
    tiny_vlm: TinyVLM, coded_video: VideoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = coded_video(SCENES)
    out = tmp_path / "out.json"
    args = ["describe", str(made.path), "--model", str(tiny_vlm.directory), "--device", "cpu"]
    args += ["--beams", "1", "--max-new-tokens", "6", "-f", "json", "-o", str(out)]
    assert main(args, stdout=io.StringIO()) == 0
    descriptions = json.loads(out.read_text())
    summary = capsys.readouterr().err.splitlines()[-1]
    assert summary.startswith("3 scenes: 0 without a pause, ")
    captioned = int(summary.split(" like the last captioned one, ")[1].split()[0])
    dropped = int(summary.split(" captioned, ")[1].split()[0])
    assert captioned > 0 and len(descriptions) == captioned - dropped
    assert all(d["text"] for d in descriptions)


def test_the_service_loads_the_model_from_its_settings_and_processes_a_job(
    tiny_vlm: TinyVLM, file_server: tuple[str, Path], coded_video: VideoFactory, tmp_path: Path
) -> None:
    base, root = file_server
    coded_video(SCENES, name="film.mp4").path.rename(root / "film.mp4")
    settings = service_settings(
        tmp_path, model=str(tiny_vlm.directory), device="cpu", beams=1, max_new_tokens=6
    )
    service = LiveService(settings, captioner=None).start()
    try:
        assert service.http.get("/readyz").json()["model"] == "ready"
        job = service.wait_done(service.submit(f"{base}/film.mp4"), timeout=120)
    finally:
        service.stop()
    assert job["status"] == "processed", job["reason"]
    progress = job["progress"]
    assert progress["scenes_found"] == 3
    assert progress["scenes_similar"] + progress["scenes_captioned"] == 3
    assert len(job["descriptions"]) == progress["scenes_captioned"] - progress["captions_dropped"]
    assert all(d["text"] for d in job["descriptions"])


def test_a_qwen_vl_model_without_torchvision_says_what_it_needs(tmp_path: Path) -> None:
    Qwen2VLConfig().save_pretrained(tmp_path)
    with (
        mock.patch("app.registry._importable", new=lambda module: module != "torchvision"),
        pytest.raises(ModelLoadError, match=r"qwen2_vl.*qwen-vl \(needs torchvision\)"),
    ):
        load_captioner(str(tmp_path), OPTIONS)
