"""Tests of model loading and captioning, on tiny BLIP and BLIP-2 models built by the fixtures."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
import torch
from PIL import Image
from transformers import BertConfig

from app.errors import ModelLoadError
from app.models import (
    BLIP2,
    DEFAULT_MODEL,
    Captioner,
    CaptionOptions,
    CaptionRequest,
    hub,
    load_captioner,
)
from app.models.captioners import CAPTIONERS, CaptionerKind
from app.models.captioners.blip import (
    ARCHITECTURES,
    CPU_BATCH_SIZE,
    MAX_AUTO_BATCH_SIZE,
    MEMORY_PER_IMAGE_BEAM,
    BlipCaptioner,
    pick_batch_size,
)
from app.models.hub import ModelSource
from tests.fixtures.models import (
    COLOURS,
    WORDS,
    ScriptedCaptioner,
    colour_caption,
    solid_image,
)

# Nothing here may reach the hub: every load is local_files_only.
LOCAL = CaptionOptions(local_files_only=True)


def noise_images(count: int, seed: int = 7) -> list[Image.Image]:
    """Images of random pixels, each different, of different sizes."""
    rng = random.Random(seed)
    images = []
    for index in range(count):
        size = (40 + 8 * index, 30 + 4 * index)
        data = bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3))
        images.append(Image.frombytes("RGB", size, data))
    return images


def load(directory: Path, **options: Any) -> BlipCaptioner:
    """Load a model directory through the public loader, never reaching the hub."""
    captioner = load_captioner(str(directory), CaptionOptions(local_files_only=True, **options))
    assert isinstance(captioner, BlipCaptioner)
    return captioner


def test_tiny_blip_loads_from_directory_and_captions_a_batch(tiny_blip_dir: Path) -> None:
    captioner = load(tiny_blip_dir, batch_size=2)

    captions = captioner.caption(noise_images(5))

    assert isinstance(captioner, Captioner)
    assert captioner.device == torch.device("cpu")
    assert captioner.dtype == torch.float32
    assert not captioner.model.training
    assert len(captions) == 5
    for caption in captions:
        assert caption == caption.strip()
        assert caption.split(), "a random BLIP still says something"
        assert set(caption.split()) <= set(WORDS) - {"[DEC]", "[SEP]", "[PAD]", "[CLS]"}


def test_tiny_blip2_loads_from_directory_and_captions_a_batch(tiny_blip2_dir: Path) -> None:
    captioner = load(tiny_blip2_dir, batch_size=2, max_new_tokens=6)

    captions = captioner.caption(noise_images(3))

    assert isinstance(captioner.model, ARCHITECTURES["blip-2"].model_class)
    assert len(captions) == 3
    for caption in captions:
        # Special tokens (the image tokens of the prompt, </s>) are dropped; the rest are
        # the tiny vocabulary's letters and spaces, at most one per new token.
        assert set(caption) <= set("abcdefghijklmnopqrstuvwxyz ")
        assert len(caption) <= 6


def test_no_images_give_no_captions(tiny_blip_dir: Path) -> None:
    assert load(tiny_blip_dir).caption([]) == []


@pytest.mark.parametrize("fixture", ["tiny_blip_dir", "tiny_blip2_dir", "colour_blip_dir"])
def test_batching_does_not_change_captions(fixture: str, request: pytest.FixtureRequest) -> None:
    directory: Path = request.getfixturevalue(fixture)
    images = noise_images(4) + [solid_image(colour) for colour in COLOURS]

    batched = load(directory, batch_size=3).caption(images)
    alone = load(directory, batch_size=1).caption(images)

    assert batched == alone
    assert len(set(alone)) > 1, "captions should depend on the image for the test to mean much"


def test_colour_model_names_the_colour(colour_blip_dir: Path) -> None:
    captioner = load(colour_blip_dir)
    colours = ["red", "green", "blue", "yellow"]
    # Plain PIL colours of other shades and sizes than the first training shade.
    images = [Image.new("RGB", (320, 180), name) for name in colours] + [
        Image.new("RGB", (64, 64), (240, 20, 30))
    ]

    captions = captioner.caption(images)

    assert captions == [colour_caption(name) for name in colours] + [colour_caption("red")]


def test_word_budget_of_a_request_bounds_the_caption(colour_blip_dir: Path) -> None:
    captioner = load(colour_blip_dir)
    image = solid_image("blue")

    # One word of budget allows two tokens (TOKENS_PER_WORD).
    assert captioner.caption([image], [CaptionRequest(max_words=1)]) == ["a blue"]
    assert captioner.caption([image]) == ["a blue scene"]
    with pytest.raises(ValueError, match="max_words"):
        captioner.caption([image], [CaptionRequest(max_words=0)])
    with pytest.raises(ValueError, match="2 requests for 1 images"):
        captioner.caption([image], [CaptionRequest(), CaptionRequest()])


def test_offload_with_accelerate_device_map(colour_blip_dir: Path) -> None:
    # Without a GPU accelerate places everything on the CPU, but the same code path runs.
    captioner = load(colour_blip_dir, offload=True, max_memory={"cpu": "2GiB"})

    assert captioner.caption([solid_image("green")]) == [colour_caption("green")]


def test_missing_directory_fails_at_once_naming_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-model"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "_hub_problem", _never_asked)

    with pytest.raises(ModelLoadError) as error:
        load_captioner(str(missing), CaptionOptions(cache_dir=str(tmp_path)))

    message = str(error.value)
    assert f"there is no directory '{missing}'" in message
    assert "--model / DESCRIBER_MODEL" in message
    assert "HF_HUB_OFFLINE=1" in message and "--local-files-only" in message


def _never_asked(source: ModelSource) -> str | None:
    pytest.fail(f"the hub was asked for {source.name_or_path!r}")


@pytest.mark.parametrize(
    ("name", "local"),
    [
        ("./blip", True),
        ("../blip", True),
        ("~/models/blip", True),
        ("/models/blip", True),
        ("models/blip/large", True),  # more than one '/'
        ("my blip", True),  # a hub id holds no space
        ("models/blip", True),  # ./models exists here
        ("Salesforce/blip-image-captioning-large", False),
        ("gpt2", False),
    ],
)
def test_which_names_are_local_paths(
    name: str, local: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()

    assert hub.is_local_path(name) is local


def test_unknown_hub_id_offline_says_what_was_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # HF_HUB_OFFLINE is read once at import, so set the value the libraries consult as well.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    with pytest.raises(ModelLoadError) as error:
        load_captioner(
            "nobody/no-such-model", CaptionOptions(cache_dir=str(tmp_path), revision="v1")
        )

    message = str(error.value)
    assert "hub id 'nobody/no-such-model' at revision 'v1'" in message
    assert f"in the cache '{tmp_path}' only" in message
    assert "HF_HUB_OFFLINE=1" in message
    assert str(Path("nobody/no-such-model").resolve()) in message
    assert DEFAULT_MODEL in message and BLIP2 in message


def test_directory_without_config_says_so(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        load_captioner(str(tmp_path), LOCAL)


def test_unsupported_model_type_lists_supported_types(tmp_path: Path) -> None:
    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4).save_pretrained(tmp_path)

    with pytest.raises(ModelLoadError) as error:
        load_captioner(str(tmp_path), LOCAL)

    message = str(error.value)
    assert "'bert' model" in message
    assert "Supported model types: blip, blip-2" in message


def test_damaged_weights_raise_model_load_error(tiny_blip_dir: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_blip_dir, damaged)
    (damaged / "model.safetensors").write_bytes(b"not safetensors")

    with pytest.raises(ModelLoadError, match="damaged"):
        load_captioner(str(damaged), LOCAL)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_raises_model_load_error(tiny_blip_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="device='auto' or 'cpu'"):
        load_captioner(str(tiny_blip_dir), CaptionOptions(local_files_only=True, device="cuda"))


@pytest.mark.parametrize(
    "options",
    [
        {"num_beams": 0},
        {"max_new_tokens": 0},
        {"min_new_tokens": -1},
        {"batch_size": 0},
        {"device": "gpu"},
        {"device": "cuda:x"},
        {"dtype": "float8"},
    ],
)
def test_invalid_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CaptionOptions(**options)


def test_pick_batch_size_from_free_gpu_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda", 0)
    free = 0

    def mem_get_info(device: torch.device) -> tuple[int, int]:
        assert device == cuda
        return free, 12 * 2**30

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)

    free = 10 * MEMORY_PER_IMAGE_BEAM
    assert pick_batch_size(cuda, num_beams=1) == 8  # 80 % of the free memory
    assert pick_batch_size(cuda, num_beams=4) == 2
    free = MEMORY_PER_IMAGE_BEAM // 2
    assert pick_batch_size(cuda, num_beams=3) == 1
    free = 1000 * MEMORY_PER_IMAGE_BEAM
    assert pick_batch_size(cuda, num_beams=1) == MAX_AUTO_BATCH_SIZE
    assert pick_batch_size(torch.device("cpu"), num_beams=3) == CPU_BATCH_SIZE


def test_importing_app_models_loads_neither_torch_nor_transformers() -> None:
    code = "import sys, app.models; print('torch' in sys.modules, 'transformers' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.split() == ["False", "False"]


def test_scripted_captioner_follows_a_script_and_records_calls() -> None:
    by_colour = ScriptedCaptioner()
    scripted = ScriptedCaptioner(["one two three", "four"])

    assert isinstance(by_colour, Captioner)
    assert by_colour.caption([solid_image("red"), solid_image("blue")]) == [
        "a red scene",
        "a blue scene",
    ]
    wanted = [CaptionRequest(max_words=2)]
    assert by_colour.caption([solid_image("green")], wanted) == ["a green scene"]
    assert by_colour.batch_sizes == [2, 1]
    assert by_colour.requests == [None, wanted]
    assert scripted.caption([solid_image("red")] * 2) == ["one two three", "four"]


def load_scripted(
    kind: CaptionerKind, source: ModelSource, options: CaptionOptions
) -> ScriptedCaptioner:
    return ScriptedCaptioner()


#: A captioner kind defined in a test: registering it is the only change it needs.
SCRIPTED_KIND = CaptionerKind(f"{__name__}:load_scripted", model_types=("bert",))


def test_a_captioner_kind_registered_in_a_test_plugs_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(CAPTIONERS.members, "scripted", SCRIPTED_KIND)
    BertConfig(vocab_size=8, hidden_size=8, num_hidden_layers=1).save_pretrained(tmp_path)

    # Picked by the model type of config.json, and by name.
    assert isinstance(load_captioner(str(tmp_path), LOCAL), ScriptedCaptioner)
    by_name = CaptionOptions(kind="scripted", local_files_only=True)
    assert isinstance(load_captioner("any/model", by_name), ScriptedCaptioner)
    with pytest.raises(ValueError, match="unknown captioner 'nope'"):
        CaptionOptions(kind="nope")


def test_pixels_go_to_the_model_in_the_type_of_its_weights(tiny_blip2_dir: Path) -> None:
    # BLIP-2 keeps its query tokens in float32: model.dtype says float32 for a float16 model.
    captioner = load_captioner(str(tiny_blip2_dir), CaptionOptions(device="cpu", dtype="float16"))
    assert isinstance(captioner, BlipCaptioner)
    assert captioner.dtype == torch.float16
    assert len(captioner.caption([solid_image("red")])) == 1
