"""Benchmark 4, GPU figures: captioning, video decoding and ``describe`` end to end on one GPU.

Run by ``bench/gpu.sh`` on a machine with an NVIDIA GPU (it installs what the machine lacks
from carried wheels first); every section writes its table to one Markdown file (``--out``)
as soon as it is done, so a run cut short keeps what it measured. A section that fails
writes its error in its place and the next one runs.

1. **Decoding** a generated 10-minute 1080p25 H.264 video (``bench/common.py``'s shots,
   libx264 superfast, CRF 23 with an 8 Mbit/s cap, B-frames): the pipeline's reader
   (``app.pipeline.video.VideoReader``, frames handed to Python) on the CPU with FFmpeg's
   threads (one per core) and with NVDEC (PyAV's CUDA hwaccel, frames copied back to system
   memory as NV12), every frame and reference frames only. Wall time, frames/s, CPU seconds.
2. **BLIP-large** (``Salesforce/blip-image-captioning-large``'s architecture, random
   weights, saved and loaded through ``app.models.load_captioner``) in float16: one image per
   ``generate`` call against batches of 8, 32, the automatic batch size and larger ones;
   every caption ``--tokens`` tokens long (min = max), 3 beams. Images/s, peak GPU memory
   (``torch.cuda.max_memory_allocated``) and what one image costs per beam above the weights,
   the figure ``app.models.blip.MEMORY_PER_IMAGE_BEAM`` estimates.
3. **End to end**: ``python -m app describe`` (a fresh process, as a user runs it) on the
   10-minute video with the random BLIP-large on the GPU: with seeded dialogue subtitles
   (about 60 % speech) decoding on the CPU and with NVDEC, and without subtitles (every scene
   captioned). Wall time with start-up and model loading, real-time factor, GPU and NVDEC
   utilisation (NVML, sampled every 0.2 s), the pipeline's scene counters, and a 2-hour film
   extrapolated from the real-time factor.
4. **BLIP-2 OPT-2.7B** (``Salesforce/blip2-opt-2.7b``'s architecture, random weights, built
   on the GPU in float16 and saved once): the same ways as BLIP-large.
5. **BLIP-2 offloaded** with accelerate (``CaptionOptions.offload``) under ``max_memory``
   caps of 12 GiB and 4 GiB on the GPU: where the weights went, images/s, peak memory.
6. **The scan on many cores**: ``python -m app scenes`` (the scan of ``describe``, in a
   fresh process) on the 10-minute video and on any ``--video`` files: a plain PyAV decode
   with all threads (the stand-in for ``ffmpeg -f null``, which the GPU machines lack), the
   full scan in one process and shared by 4 to 16 worker processes (``app.pipeline.chunks``),
   the same decoding with NVDEC, and the keyframe scan; whether each finds the same scenes
   and frames as one process.

Section 3 runs once per ``--scan-workers`` value (0: the default, ``default_workers``).

``--smoke`` runs every section on the CPU with tiny models and a 20-second 320x240 video,
to check the script itself on a machine without a GPU.

Run::

    bash bench/gpu.sh                          # on the GPU machine; tables in $OUT/gpu.md
    .venv/bin/python bench/gpu.py --smoke --out /tmp/gpu-smoke.md
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.errors import DescriberError
from app.models import CaptionOptions, load_captioner
from app.models.captioners.blip import MEMORY_PER_IMAGE_BEAM, BlipCaptioner
from app.pipeline.chunks import default_workers
from app.pipeline.video import VideoReader
from bench.captioning import bench_images, build_blip_large
from bench.common import BenchVideo, Timing, bench_video, log, mib, table, timed
from bench.end_to_end import dialogue
from bench.scan_wall import decode_all

REPO = Path(__file__).resolve().parents[1]
GIB = 2**30


@dataclass(frozen=True)
class Sizes:
    """What a run measures: the GPU figures, or a quick check of the script on a CPU."""

    device: str
    video_seconds: float
    video_size: tuple[int, int]
    images: int
    single_images: int
    batches: tuple[int, ...]
    blip2_images: int
    blip2_batches: tuple[int, ...]
    offload_caps: tuple[str, ...]
    scan_workers: tuple[int, ...]
    scan_chunk: float
    tiny: bool


GPU = Sizes(
    device="cuda",
    video_seconds=600,
    video_size=(1920, 1080),
    images=128,
    single_images=32,
    batches=(8, 32, 64, 128),
    blip2_images=64,
    blip2_batches=(8, 32, 64),
    offload_caps=("12GiB", "4GiB"),
    scan_workers=(4, 8, 16),
    scan_chunk=60.0,
    tiny=False,
)
SMOKE = Sizes(
    device="cpu",
    video_seconds=20,
    video_size=(320, 240),
    images=8,
    single_images=4,
    batches=(4, 8),
    blip2_images=4,
    blip2_batches=(4,),
    offload_caps=(),
    scan_workers=(2,),
    scan_chunk=10.0,
    tiny=True,
)


class Report:
    """The Markdown file the sections write to, rewritten after each so nothing is lost."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.parts: list[str] = []
        path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, text: str) -> None:
        self.parts.append(text.rstrip() + "\n")
        print(text, flush=True)
        self.path.write_text("\n".join(self.parts))

    def section(self, title: str, run: Callable[[], str]) -> None:
        """Run one section; its error, if any, is reported in its place."""
        log(f"section: {title}")
        started = time.perf_counter()
        try:
            body = run()
        except Exception as exc:  # a bench section: report it and go on with the next
            body = "**Failed**:\n\n```\n" + "".join(traceback.format_exception(exc)[-12:]) + "```"
        seconds = time.perf_counter() - started
        self.add(f"## {title}\n\n{body}\n\n_Section took {seconds:.0f} s._\n")


def code(text: str) -> str:
    return f"```\n{text}\n```"


def free_gpu() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- 1. decoding -------------------------------------------------------------------------


def decode_rows(video: BenchVideo, sizes: Sizes) -> str:
    ways = [("CPU, FFmpeg threads (one per core)", "cpu")]
    if sizes.device == "cuda":
        ways.append(("NVDEC (PyAV CUDA hwaccel), frames back as NV12", "cuda"))
    rows = []
    for label, device in ways:
        for skip in (False, True):
            name = label + (", reference frames only" if skip else ", every frame")
            try:
                with VideoReader(video.path, skip_nonref=skip, decode_device=device) as reader:
                    hardware = reader.decodes_on_gpu
                    timing, frames = timed(lambda r=reader: sum(1 for _ in r.frames()))
            except DescriberError as exc:  # NVDEC missing on this machine: say so in the row
                rows.append([name, f"failed: {exc}", "", "", "", "", ""])
                continue
            rows.append(
                [
                    name,
                    "yes" if hardware else "no",
                    f"{frames}",
                    f"{timing.wall:.1f}",
                    f"{frames / timing.wall:.0f}",
                    f"{video.duration / timing.wall:.0f}x",
                    f"{timing.cpu:.0f}",
                ]
            )
    headers = ["decoder", "on GPU", "frames", "wall s", "frames/s", "x real time", "CPU s"]
    return (
        f"{video.describe()}; {os.cpu_count()} CPU cores. One run each, in this order, through "
        "`VideoReader.frames()` (every frame reaches Python).\n\n" + code(table(headers, rows))
    )


# --- 2 and 4. captioning -----------------------------------------------------------------


@dataclass
class WayResult:
    name: str
    batch: int
    images: int
    seconds: float
    peak: int
    texts: list[str] = field(repr=False)


def caption_ways(
    captioner: BlipCaptioner, images: Sequence[Image.Image], singles: int, batches: Sequence[int]
) -> tuple[list[WayResult], int]:
    """Caption the images one per call, then in each batch size; the automatic one included."""
    device = captioner.device
    auto = captioner.batch_size
    sizes = sorted({*batches, auto})
    captioner.caption(images[:1])  # warm-up: kernels, allocator
    weights = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    results = []

    def measure(name: str, batch: int, count: int, run: Callable[[], list[str]]) -> None:
        captioner.batch_size = batch
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        timing, texts = timed(run)
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
        results.append(WayResult(name, batch, count, timing.wall, peak, texts))

    first = images[:singles]
    measure("one per generate", 1, len(first), lambda: [captioner.caption([i])[0] for i in first])
    for batch in sizes:
        if batch > len(images):
            continue
        captioner.caption(images[:batch])  # warm-up of this shape
        name = f"batch {batch}" + (" (automatic)" if batch == auto else "")
        measure(name, batch, len(images), lambda: captioner.caption(images))
    captioner.batch_size = auto
    return results, weights


def caption_table(captioner: BlipCaptioner, results: list[WayResult], weights: int) -> str:
    beams = captioner.options.num_beams
    base = results[0].images / results[0].seconds
    one = results[0].texts
    rows = []
    for r in results:
        rate = r.images / r.seconds
        per = (r.peak - weights) / (r.batch * beams) if r.peak else 0
        same = sum(a == b for a, b in zip(one, r.texts, strict=False))
        rows.append(
            [
                r.name,
                f"{r.images}",
                f"{r.seconds:.2f}",
                f"{rate:.1f}",
                f"{rate / base:.2f}x",
                mib(r.peak),
                mib(per),
                f"{same}/{min(len(one), len(r.texts))}",
            ]
        )
    headers = [
        "way",
        "images",
        "wall s",
        "images/s",
        "vs one",
        "peak GPU memory",
        "per image per beam",
        "same captions as one-by-one",
    ]
    return code(table(headers, rows))


def captioning_section(
    model_dir: Path, label: str, sizes: Sizes, images_count: int, batches: Sequence[int]
) -> str:
    options = CaptionOptions(
        num_beams=3,
        max_new_tokens=20,
        min_new_tokens=20,
        device=sizes.device,
        local_files_only=True,
    )
    started = time.perf_counter()
    captioner = load_captioner(str(model_dir), options)
    assert isinstance(captioner, BlipCaptioner)
    load = time.perf_counter() - started
    images = bench_images(images_count)
    singles = min(images_count, sizes.single_images)
    results, weights = caption_ways(captioner, images, singles, batches)
    text = (
        f"{label}, random weights, loaded from a local directory through `load_captioner` in "
        f"{load:.1f} s, on {captioner.device} as {captioner.dtype}; weights take "
        f"{mib(weights)} on the GPU. Automatic batch size: {captioner.batch_size} "
        f"(estimate {mib(MEMORY_PER_IMAGE_BEAM)} per image per beam). Images 1280x720, "
        f"{options.max_new_tokens} tokens each (min = max), {options.num_beams} beams; "
        "one run per way after a warm-up of its shape. 'per image per beam': (peak - "
        "weights) / (batch x beams).\n\n" + caption_table(captioner, results, weights)
    )
    del captioner
    free_gpu()
    return text


def blip2_config_and_processor(tiny: bool) -> tuple[Any, Any]:
    """Salesforce/blip2-opt-2.7b's sizes (or tiny ones) and a processor whose tokenizer has
    the OPT vocabulary's size (byte-level BPE without merges: filler tokens, never merged)."""
    from transformers import Blip2Config, Blip2Processor, BlipImageProcessorPil, GPT2Tokenizer

    vocab_size = 64 if tiny else 50265
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for char in "abcdefghijklmnopqrstuvwxyz\u0120":  # \u0120 is GPT-2's space marker
        vocab[char] = len(vocab)
    while len(vocab) < vocab_size:
        vocab[f"w{len(vocab)}"] = len(vocab)
    tokenizer = GPT2Tokenizer(
        vocab=vocab, merges=[], unk_token="<unk>", bos_token="</s>", eos_token="</s>",
        pad_token="<pad>",
    )  # fmt: skip
    queries = 4 if tiny else 32
    side = 32 if tiny else 224
    processor = Blip2Processor(
        image_processor=BlipImageProcessorPil(size={"height": side, "width": side}),
        tokenizer=tokenizer,
        num_query_tokens=queries,
    )
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    if tiny:
        vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "patch_size": 8}  # fmt: skip
        qformer = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                   "num_attention_heads": 4}  # fmt: skip
        text = {"hidden_size": 32, "ffn_dim": 64, "num_hidden_layers": 2,
                "num_attention_heads": 4, "word_embed_proj_dim": 32}  # fmt: skip
    else:
        vision = {"hidden_size": 1408, "intermediate_size": 6144, "num_hidden_layers": 39,
                  "num_attention_heads": 16, "patch_size": 14}  # fmt: skip
        qformer = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                   "num_attention_heads": 12}  # fmt: skip
        text = {"hidden_size": 2560, "ffn_dim": 10240, "num_hidden_layers": 32,
                "num_attention_heads": 32, "word_embed_proj_dim": 2560}  # fmt: skip
    config = Blip2Config(
        vision_config={**vision, "image_size": side, "initializer_range": 0.02},
        qformer_config={**qformer, "vocab_size": 30522, "max_position_embeddings": 512},
        text_config={
            **text,
            "model_type": "opt",
            "vocab_size": 50272 if not tiny else len(tokenizer) + 8,
            "max_position_embeddings": 2048,
            "bos_token_id": vocab["</s>"],
            "eos_token_id": vocab["</s>"],
            "pad_token_id": vocab["<pad>"],
        },
        num_query_tokens=queries,
        image_token_index=image_token,
    )
    return config, processor


def build_blip2(directory: Path, tiny: bool, device: str) -> Path:
    """Save a random BLIP-2 OPT-2.7B (or a tiny one) in float16 into ``directory`` (once).

    Built on ``device`` in float16: 3.9 billion parameters initialise in seconds on a GPU
    and take 7.7 GB on disk."""
    from transformers import Blip2ForConditionalGeneration

    if (directory / "config.json").exists():
        return directory
    config, processor = blip2_config_and_processor(tiny)
    partial = directory.with_name(directory.name + ".part")
    started = time.perf_counter()
    with torch.random.fork_rng(), torch.device(device):
        torch.manual_seed(0)
        model = Blip2ForConditionalGeneration(config).to(torch.float16)
    model.save_pretrained(partial)
    processor.save_pretrained(partial)
    del model
    free_gpu()
    partial.replace(directory)
    log(f"built {directory.name} in {time.perf_counter() - started:.0f} s")
    return directory


def blip_model(workdir: Path, sizes: Sizes) -> Path:
    """The BLIP the captioning and end-to-end sections use, built once."""
    if not sizes.tiny:
        return build_blip_large(workdir / "blip-large-random")
    from tests.fixtures.models import build_tiny_blip

    directory = workdir / "tiny-blip"
    if not (directory / "config.json").exists():
        build_tiny_blip(directory)
    return directory


def offload_section(model_dir: Path, sizes: Sizes) -> str:
    rows = []
    for cap in sizes.offload_caps:
        options = CaptionOptions(
            num_beams=3,
            max_new_tokens=20,
            min_new_tokens=20,
            device=sizes.device,
            offload=True,
            max_memory={"0": cap, "cpu": "100GiB"},
            local_files_only=True,
        )
        free_gpu()
        started = time.perf_counter()
        captioner = load_captioner(str(model_dir), options)
        assert isinstance(captioner, BlipCaptioner)
        load = time.perf_counter() - started
        placed: dict[str, int] = {}
        for where in getattr(captioner.model, "hf_device_map", {}).values():
            placed[str(where)] = placed.get(str(where), 0) + 1
        weights = torch.cuda.memory_allocated()
        images = bench_images(16)
        for batch in sorted({8, captioner.batch_size}):
            captioner.batch_size = batch
            captioner.caption(images[:batch])
            torch.cuda.reset_peak_memory_stats()
            timing, _ = timed(functools.partial(captioner.caption, images))
            rows.append(
                [
                    cap,
                    ", ".join(f"{k}: {v}" for k, v in sorted(placed.items())),
                    f"{load:.0f}",
                    mib(weights),
                    f"{batch}",
                    f"{len(images) / timing.wall:.2f}",
                    mib(torch.cuda.max_memory_allocated()),
                ]
            )
        del captioner
        free_gpu()
    headers = ["GPU cap", "modules placed", "load s", "weights on GPU", "batch", "images/s",
               "peak GPU memory"]  # fmt: skip
    return (
        "BLIP-2 OPT-2.7B (random, float16) loaded with `offload=True`, `max_memory={'0': cap, "
        "'cpu': '100GiB'}`; 16 images, 20 tokens, 3 beams, batch 8 and the automatic one "
        "(which reads the GPU's free memory, not the cap).\n\n" + code(table(headers, rows))
    )


# --- 3. end to end -----------------------------------------------------------------------


class GpuSampler:
    """GPU and NVDEC utilisation (NVML), sampled every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.gpu: list[int] = []
        self.decoder: list[int] = []
        self.memory: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle: Any = None

    def __enter__(self) -> GpuSampler:
        try:
            import pynvml
        except ImportError:
            return self  # no NVML here (the CPU smoke run): utilisation is not reported
        pynvml.nvmlInit()
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        self._thread = threading.Thread(target=self._run, args=(pynvml,), daemon=True)
        self._thread.start()
        return self

    def _run(self, nvml: Any) -> None:
        while not self._stop.wait(self.interval):
            self.gpu.append(nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)
            self.decoder.append(nvml.nvmlDeviceGetDecoderUtilization(self._handle)[0])
            self.memory.append(nvml.nvmlDeviceGetMemoryInfo(self._handle).used)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> tuple[str, str, str]:
        if not self.gpu:
            return ("n/a", "n/a", "n/a")
        mean = sum(self.gpu) / len(self.gpu)
        busy = sum(1 for g in self.gpu if g > 0) / len(self.gpu)
        decoder = sum(self.decoder) / len(self.decoder)
        return (f"{mean:.0f}% (busy {busy:.0%})", f"{decoder:.0f}%", mib(max(self.memory)))


def write_subtitles(video: BenchVideo, path: Path) -> float:
    """Seeded dialogue (``bench/end_to_end.py``) as an SRT file; returns the speech share."""
    import pysrt

    spans = dialogue(video.duration, seed=1)
    subs = pysrt.SubRipFile(
        [
            pysrt.SubRipItem(
                index + 1,
                start=pysrt.SubRipTime(milliseconds=round(start * 1000)),
                end=pysrt.SubRipTime(milliseconds=round(end * 1000)),
                text="Where were you last night?",
            )
            for index, (start, end) in enumerate(spans)
        ]
    )
    subs.save(str(path), encoding="utf-8")
    return sum(end - start for start, end in spans) / video.duration


def end_to_end_section(
    video: BenchVideo,
    model_dir: Path,
    sizes: Sizes,
    workdir: Path,
    speech: Sequence[str],
    decoders: Sequence[str],
    scan_workers: Sequence[int],
) -> str:
    subtitles = workdir / "dialogue.srt"
    speech_share = write_subtitles(video, subtitles)
    given = {"subtitles": ["--subtitles", str(subtitles)], "none": []}
    names = {"subtitles": "subtitles", "none": "no subtitles, no audio (every scene)"}
    runs = [
        (
            f"{names[s]}, decode {d}, scan workers {w or f'default ({default_workers(d)})'}",
            [*given[s], "--scan-workers", str(w)],
            d,
        )
        for s in speech
        for d in decoders
        for w in scan_workers
    ]
    rows = []
    summaries = []
    for label, extra, decode in runs:
        out = workdir / "descriptions.json"
        cmd = [
            sys.executable, "-m", "app", "describe", str(video.path), *extra,
            "--model", str(model_dir), "--local-files-only", "--device", sizes.device,
            "--decode-device", decode, "--format", "json", "--output", str(out),
        ]  # fmt: skip
        with GpuSampler() as sampler:
            timing, proc = timed(
                lambda c=cmd: subprocess.run(c, cwd=REPO, capture_output=True, text=True)
            )
        if proc.returncode != 0:
            rows.append([label, "failed", "", "", "", "", "", "", ""])
            summaries.append(f"- {label}: failed: {proc.stderr.strip()[-1500:]}")
            continue
        summary = proc.stderr.strip().splitlines()[-1]
        descriptions = len(json.loads(out.read_text()))
        rtf = timing.wall / video.duration
        gpu, decoder, memory = sampler.summary()
        rows.append(
            [
                label,
                f"{timing.wall:.1f}",
                f"{rtf:.3f}",
                f"{rtf * 7200 / 60:.1f}",
                f"{timing.cpu:.0f}",
                gpu,
                decoder,
                memory,
                f"{descriptions}",
            ]
        )
        summaries.append(f"- {label}: {summary}")
    headers = ["run", "wall s", "RTF", "2-h film, min", "CPU s", "GPU util", "NVDEC util",
               "GPU memory used", "descriptions"]  # fmt: skip
    return (
        f"`python -m app describe` in a fresh process on {video.describe()}; BLIP-large "
        f"random weights on {sizes.device} (float16 on CUDA), defaults otherwise (3 beams, "
        f"METEOR novelty, reference frames only). Subtitles: seeded dialogue, "
        f"{speech_share:.0%} of the time. Wall time includes start-up and model loading; "
        "'2-h film' is RTF x 7200 s (start-up counted once per 10 min, so a slight "
        "overestimate). GPU util: NVML's mean over 0.2 s samples (and the share of samples "
        "with any kernel running).\n\n"
        + code(table(headers, rows))
        + "\n\nWhat became of the scenes (the CLI's closing line):\n\n"
        + "\n".join(summaries)
    )


# --- 6. the scan on many cores -----------------------------------------------------------


def scan_section(
    video: BenchVideo, sizes: Sizes, films: Sequence[Path], rows: Collection[str]
) -> str:
    top = max(sizes.scan_workers)
    ways: list[tuple[str, list[str]]] = []
    if "workers" in rows:
        ways += [
            *(
                (f"full scan, {w} workers, {sizes.scan_chunk:g} s chunks",
                 ["--scan-workers", str(w), "--scan-chunk", str(sizes.scan_chunk)])
                for w in sizes.scan_workers
            ),
            (f"full scan, {top} workers, {sizes.scan_chunk / 2:g} s chunks",
             ["--scan-workers", str(top), "--scan-chunk", str(sizes.scan_chunk / 2)]),
        ]  # fmt: skip
    if "keyframes" in rows:
        ways.append(("keyframe scan, one process", ["--scan", "keyframes"]))
    if sizes.device == "cuda" and "keyframes" in rows:
        ways.append(("keyframe scan, NVDEC", ["--scan", "keyframes", "--decode-device", "cuda"]))
    if sizes.device == "cuda" and "nvdec" in rows:
        ways += [
            (f"full scan, {w} worker{'s' if w > 1 else ''}, NVDEC",
             ["--scan-workers", str(w), "--decode-device", "cuda"])
            for w in (1, *sizes.scan_workers)
        ]  # fmt: skip
    parts = []
    for path in [video.path, *films]:
        with VideoReader(path) as reader:
            info = reader.info
        decode, frames = timed(lambda p=path: decode_all(p))
        one, alone = _scenes(path, ["--scan-workers", "1"])
        table_rows = [
            ["PyAV decode, all threads (ffmpeg -f null)", f"{decode.wall:.1f}", "1.00x",
             f"{decode.cpu:.0f}", f"{frames} frames", ""],
            ["full scan, one process", f"{one.wall:.1f}", f"{decode.wall / one.wall:.2f}x",
             f"{one.cpu:.0f}", f"{len(alone)} scenes", "-"],
        ]  # fmt: skip
        for name, extra in ways:
            timing, found = _scenes(path, extra)
            log(f"{path.name}: {name}: {timing.wall:.1f} s wall, {timing.cpu:.0f} CPU s")
            table_rows.append(
                [name, f"{timing.wall:.1f}", f"{decode.wall / timing.wall:.2f}x",
                 f"{timing.cpu:.0f}", f"{len(found)} scenes", "yes" if found == alone else "NO"]
            )  # fmt: skip
        headers = ["scan", "wall s", "vs decode", "CPU s", "found", "same as one process"]
        parts.append(
            f"{path.name}: {info.width}x{info.height} {float(info.frame_rate or 0):.3g} fps, "
            f"{info.duration or 0:.0f} s.\n\n" + code(table(headers, table_rows))
        )
    return (
        f"`python -m app scenes VIDEO --format json` in a fresh process (start-up included), "
        f"one run of each, in this order, on {os.cpu_count()} CPU cores; CPU seconds count the "
        "worker processes. 'same': every scene's start, end and frame time as in one process."
        "\n\n" + "\n\n".join(parts)
    )


def _scenes(path: Path, extra: Sequence[str]) -> tuple[Timing, list[tuple[Any, ...]]]:
    """The scenes ``python -m app scenes`` lists, and how long it took."""
    cmd = [sys.executable, "-m", "app", "scenes", str(path), "--format", "json", *extra]
    timing, proc = timed(lambda: subprocess.run(cmd, cwd=REPO, capture_output=True, text=True))
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-1500:]}")
    listed = json.loads(proc.stdout)["scenes"]
    return timing, [(s["start"], s["end"], s["frame_time"]) for s in listed]


# --- main --------------------------------------------------------------------------------


def environment(sizes: Sizes) -> str:
    import av
    import transformers

    lines = [
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- python {platform.python_version()}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, PyAV {av.__version__} (FFmpeg hw devices: "
        f"{', '.join(av.codec.hwaccel.hwdevices_available())})",
        f"- CPU cores: {os.cpu_count()}",
    ]
    if sizes.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        driver = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        lines.append(
            f"- GPU: {props.name}, {props.total_memory / GIB:.0f} GiB, "
            f"{props.multi_processor_count} SMs, driver {driver}"
        )
    return "\n".join(lines)


@contextmanager
def stage(name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    log(f"{name} done in {time.perf_counter() - started:.0f} s")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring (bench/gpu.py) for what is measured.",
    )
    parser.add_argument("--out", type=Path, required=True, help="Markdown file for the tables")
    parser.add_argument(
        "--workdir", type=Path, default=Path("/tmp/describer-gpu"), help="videos and models"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument(
        "--sections",
        default="1,2,3,4,5,6",
        help="which sections to run, in this order, e.g. 6,3 (default all)",
    )
    parser.add_argument(
        "--decoders", default=None, help="end-to-end runs: cpu and/or cuda (default: both on a GPU)"
    )
    parser.add_argument(
        "--scan-workers",
        default="0",
        help="end-to-end runs: --scan-workers values, e.g. 0,1 (default 0: the default)",
    )
    parser.add_argument(
        "--video",
        type=Path,
        action="append",
        default=[],
        help="section 6: another film to scan (repeatable)",
    )
    parser.add_argument(
        "--speech",
        default="subtitles,none",
        help="end-to-end runs: with seeded dialogue subtitles and/or none (default both)",
    )
    parser.add_argument(
        "--scan-rows",
        default="workers,keyframes,nvdec",
        help="section 6: which scans besides one process: workers (CPU), keyframes, nvdec",
    )
    args = parser.parse_args(argv)
    chosen = list(dict.fromkeys(args.sections.split(",")))
    if set(chosen) - set("123456"):
        parser.error(f"--sections takes numbers 1 to 6, got {args.sections!r}")
    speech = args.speech.split(",")
    if not speech or set(speech) - {"subtitles", "none"}:
        parser.error(f"--speech takes subtitles and/or none, got {args.speech!r}")
    scan_rows = set(args.scan_rows.split(","))
    if scan_rows - {"workers", "keyframes", "nvdec"}:
        parser.error(f"--scan-rows takes workers, keyframes and/or nvdec, got {args.scan_rows!r}")
    sizes = SMOKE if args.smoke else GPU
    decoders = (args.decoders or ("cpu,cuda" if sizes.device == "cuda" else "cpu")).split(",")
    scan_workers = [int(w) for w in args.scan_workers.split(",")]
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    # Built before anything touches CUDA: the shots are encoded in forked processes.
    with stage("video"):
        video = bench_video(
            workdir,
            duration=sizes.video_seconds,
            size=sizes.video_size,
            seed=1,
            jobs=os.cpu_count() or 2,
        )
    report = Report(args.out)
    report.add("# GPU figures\n\n" + environment(sizes))
    sections: dict[str, tuple[str, Callable[[], str]]] = {
        "1": ("1. Decoding", lambda: decode_rows(video, sizes)),
        "2": (
            "2. Captioning: BLIP-large",
            lambda: captioning_section(
                blip_model(workdir, sizes), blip_label, sizes, sizes.images, sizes.batches
            ),
        ),
        "3": (
            "3. End to end: describe a 10-minute film",
            lambda: end_to_end_section(
                video,
                blip_model(workdir, sizes),
                sizes,
                workdir,
                speech,
                decoders,
                scan_workers,
            ),
        ),
        "4": (
            "4. Captioning: BLIP-2 OPT-2.7B",
            lambda: captioning_section(
                build_blip2(blip2, sizes.tiny, sizes.device),
                "Tiny BLIP-2" if sizes.tiny else "BLIP-2 OPT-2.7B architecture",
                sizes,
                sizes.blip2_images,
                sizes.blip2_batches,
            ),
        ),
        "5": (
            "5. BLIP-2 offloaded under a GPU memory cap",
            lambda: offload_section(build_blip2(blip2, sizes.tiny, sizes.device), sizes),
        ),
        "6": (
            "6. The scan on many cores",
            lambda: scan_section(video, sizes, args.video, scan_rows),
        ),
    }
    blip_label = "Tiny BLIP (tests.fixtures.models)" if sizes.tiny else "BLIP-large architecture"
    blip2 = workdir / ("tiny-blip2-random" if sizes.tiny else "blip2-opt-2.7b-random")
    for key in chosen:  # in the order given
        title, run = sections[key]
        if key != "5" or sizes.offload_caps:
            report.section(title, run)
    log(f"report written to {args.out}")


if __name__ == "__main__":
    main()
