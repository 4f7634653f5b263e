"""Benchmark 2, captioning: one frame per ``generate`` call against the project's batched path.

The model is BLIP-large's architecture (``Salesforce/blip-image-captioning-large``: ViT-L/16
vision encoder at 384 px, hidden 1024, 24 layers, 16 heads; BERT-base text decoder, hidden
768, 12 layers, vocabulary 30524) with random weights, so it costs what the real model
costs and needs no download. It is saved once under ``--workdir`` and loaded through
``app.models.load_captioner``, the project's real path (device, dtype and automatic batch
size included). Every caption has the same length (``min_new_tokens = max_new_tokens``,
default 20) with 3 beams, so both ways do the same work.

* one at a time: ``captioner.caption([image])`` per image, one ``generate`` call each (what
  the seed did);
* batched: ``captioner.caption(images)``, which runs ``generate`` on chunks of the
  captioner's batch size (``--batch-size``; default: the captioner's own choice, from free
  GPU memory on CUDA, a small fixed size on the CPU).

Last, the processor alone (resize and normalise, which run in the captioning thread) is
timed on 1080p frames and on frames scaled to ``DescribeOptions.caption_image_side``, the
size the pipeline hands over.

Both ways run on the same images, after a warm-up of each shape, ``--repeats`` times,
interleaved, in the same run; the median is reported with images/s, the ratio and the
peak memory of each way (``torch.cuda.max_memory_allocated`` on CUDA; sampled process RSS
on the CPU, which includes the model's weights).

Run::

    .venv/bin/python bench/captioning.py                      # CPU, 8 images
    .venv/bin/python bench/captioning.py --device cuda        # GPU, fp16, automatic batch
    .venv/bin/python bench/captioning.py --device cuda --batch-size 32 --images 256
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import (
    BertTokenizer,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipImageProcessorPil,
    BlipProcessor,
)

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.models import CaptionOptions, load_captioner
from app.models.captioners.blip import BlipCaptioner
from app.pipeline.describe import DescribeOptions
from bench.common import (
    DEFAULT_WORKDIR,
    RssSampler,
    current_rss_bytes,
    load_average,
    log,
    machine_line,
    median,
    mib,
    table,
    timed,
)

#: BERT-base's special tokens at their usual ids, and BLIP's decoder start token after them.
_SPECIAL_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
_VOCAB_SIZE = 30524
_DEC_ID = 30522


def blip_large_config() -> BlipConfig:
    """A ``BlipConfig`` with the sizes of Salesforce/blip-image-captioning-large."""
    return BlipConfig(
        vision_config={
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "image_size": 384,
            "patch_size": 16,
            "layer_norm_eps": 1e-5,
            # BLIP's default (1e-10) makes activations so small that they become denormal
            # floats, which are many times slower on CPUs: the real weights are not like that.
            "initializer_range": 0.02,
        },
        text_config={
            "vocab_size": _VOCAB_SIZE,
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "max_position_embeddings": 512,
            "bos_token_id": _DEC_ID,
            "pad_token_id": _SPECIAL_IDS["[PAD]"],
            "sep_token_id": _SPECIAL_IDS["[SEP]"],
            "eos_token_id": 2,
        },
        projection_dim=512,
        image_text_hidden_size=256,
    )


def _processor() -> BlipProcessor:
    """BLIP's processor: 384 px images, a BERT tokenizer with BLIP-large's vocabulary size."""
    tokens = [f"w{i}" for i in range(_VOCAB_SIZE)]
    for name, index in {**_SPECIAL_IDS, "[DEC]": _DEC_ID, "[ENC]": _DEC_ID + 1}.items():
        tokens[index] = name
    vocab = {token: index for index, token in enumerate(tokens)}
    # transformers 5's BertTokenizer takes the vocabulary as a dict (vocab_file= is ignored).
    tokenizer = BertTokenizer(vocab=vocab, bos_token="[DEC]")
    image_processor = BlipImageProcessorPil(size={"height": 384, "width": 384})
    return BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


def build_blip_large(directory: Path) -> Path:
    """Save a randomly initialised BLIP-large and its processor into ``directory`` (once)."""
    if (directory / "config.json").exists():
        return directory
    started = time.perf_counter()
    log(f"building a random BLIP-large in {directory} (once; about 1.9 GB) ...")
    partial = directory.with_name(directory.name + ".part")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BlipForConditionalGeneration(blip_large_config())
    model.save_pretrained(partial)
    _processor().save_pretrained(partial)
    del model
    partial.replace(directory)
    log(f"built in {time.perf_counter() - started:.0f} s")
    return directory


def bench_images(
    count: int, seed: int = 0, size: tuple[int, int] = (1280, 720)
) -> list[Image.Image]:
    """Distinct RGB images of ``size``: colour gradients with noise, no two alike."""
    rng = np.random.default_rng(seed)
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    images = []
    for _ in range(count):
        a, b, c = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3), rng.uniform(0, 255, 3)
        pixels = c + 120 * (a * (xs[..., None] / width) + b * (ys[..., None] / height))
        pixels += rng.normal(0, 20, pixels.shape)
        images.append(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB"))
    return images


@dataclass
class Way:
    """One way of captioning the images, run several times."""

    name: str
    caption: Callable[[], list[str]]
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


class PeakMemory:
    """Peak memory of a block: CUDA allocator peak on a GPU, sampled RSS on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0
        self._sampler: RssSampler | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._sampler = RssSampler().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        elif self._sampler is not None:
            self._sampler.__exit__(*exc)
            self.peak = self._sampler.peak


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring (bench/captioning.py) for details.",
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="model cache")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument(
        "--dtype", default="auto", help="auto (float16 on CUDA, float32 on CPU), float16, ..."
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per generate call when batched (default: the captioner's choice)",
    )
    parser.add_argument(
        "--images", type=int, default=None, help="images captioned (default 8 on CPU, 128 on GPU)"
    )
    parser.add_argument("--tokens", type=int, default=20, help="tokens per caption (default 20)")
    parser.add_argument("--beams", type=int, default=3, help="beams (default 3)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each way (default 2)")
    args = parser.parse_args(argv)

    model_dir = build_blip_large(args.workdir / "blip-large-random")
    options = CaptionOptions(
        num_beams=args.beams,
        max_new_tokens=args.tokens,
        min_new_tokens=args.tokens,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        local_files_only=True,
    )
    started = time.perf_counter()
    captioner = load_captioner(str(model_dir), options)
    assert isinstance(captioner, BlipCaptioner)
    load_seconds = time.perf_counter() - started
    device = captioner.device
    count = args.images or (128 if device.type == "cuda" else 8)
    images = bench_images(count)
    batch = captioner.batch_size

    log("warming up both shapes")
    captioner.caption(images[:1])
    captioner.caption(images[:batch])
    # After the warm-up: the weights are memory-mapped and count once they have been read.
    rss_warm = current_rss_bytes()

    load = load_average()
    ways = [
        Way("one per generate", lambda: [captioner.caption([im])[0] for im in images]),
        Way(f"batched ({batch} per generate)", lambda: captioner.caption(images)),
    ]
    for repeat in range(args.repeats):
        for way in ways:
            log(f"run {repeat + 1}/{args.repeats}: {way.name}, {count} images")
            with PeakMemory(device) as memory:
                timing, way.texts = timed(way.caption)
            way.seconds.append(timing.wall)
            way.cpu.append(timing.cpu)
            way.peaks.append(memory.peak)

    single, batched = ways
    same = sum(a == b for a, b in zip(single.texts, batched.texts, strict=True))
    memory_kind = "CUDA max allocated" if device.type == "cuda" else "peak RSS (sampled)"
    print(machine_line(load))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"BLIP-large architecture, random weights, on {device} ({name}) as {captioner.dtype}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; loaded in "
        f"{load_seconds:.0f} s, RSS after warm-up {mib(rss_warm)}"
    )
    print(
        f"{count} images of 1280x720, {args.tokens} tokens each (min = max), "
        f"{args.beams} beams; both ways measured in this one run, {args.repeats} repeat(s) "
        "each, interleaved; median reported."
    )
    rows = []
    base = median(single.seconds)
    for way in ways:
        seconds = median(way.seconds)
        rows.append(
            [
                way.name,
                " / ".join(f"{s:.1f}" for s in way.seconds),
                f"{seconds:.1f}",
                f"{count / seconds:.2f}",
                f"{base / seconds:.2f}x",
                " / ".join(f"{c:.0f}" for c in way.cpu),
                mib(max(way.peaks)),
            ]
        )
    print(table(["way", "runs (s)", "median s", "images/s", "vs one", "CPU s", memory_kind], rows))
    print(
        "runs: wall seconds of each run; CPU s: user + system seconds of each run (all "
        "threads), which grows less than wall time when other work shares the machine."
    )
    print(f"Captions identical between the two ways: {same} of {count}.")
    if device.type == "cuda":
        ratio = base / median(batched.seconds)
        verdict = "meets" if ratio >= 3 else "misses"
        print(f"Target: batched >= 3x one-per-generate on GPU; {ratio:.2f}x {verdict} it.")
    print_preprocessing(captioner)


def print_preprocessing(captioner: BlipCaptioner, count: int = 8, repeats: int = 3) -> None:
    """Time the processor (resize, normalise), which runs in the captioning thread before
    each ``generate``, on 1080p frames and on frames scaled as the pipeline hands them over
    (``DescribeOptions.caption_image_side``)."""
    side = DescribeOptions().caption_image_side or 1920
    sizes = [(1920, 1080), (side, round(side * 1080 / 1920))]
    cells = []
    for size in sizes:
        images = bench_images(count, seed=1, size=size)
        captioner.processor(images=images, return_tensors="pt")
        started = time.perf_counter()
        for _ in range(repeats):
            captioner.processor(images=images, return_tensors="pt")
        each = (time.perf_counter() - started) / repeats / count
        cells.append(f"{size[0]}x{size[1]} {each * 1000:.1f} ms")
    print(f"Processor per image, in the captioning thread: {'; '.join(cells)}.")


if __name__ == "__main__":
    main()
