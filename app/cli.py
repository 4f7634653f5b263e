"""Command line: ``python -m app describe VIDEO`` writes timed descriptions; ``serve`` runs the API.

Errors print one line on stderr, without a traceback, and exit with status 1 (bad input or
model) or 130 (interrupted).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TextIO

from PIL import Image
from tqdm import tqdm

from app.errors import DescriberError
from app.models import DEFAULT_MODEL, KNOWN_MODELS, Captioner, CaptionOptions, load_captioner
from app.pipeline.describe import DescribeOptions, SpeechSource, describe_media
from app.pipeline.novelty import DEFAULT_SCORER, SCORERS
from app.pipeline.scenes import DETECTORS, SceneOptions
from app.pipeline.types import Progress, Stage
from app.pipeline.writers import OutputFormat, open_writer

logger = logging.getLogger("app.cli")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    d = commands.add_parser("describe", help="describe a video file or URL")
    d.add_argument("video", help="video file path or http(s) URL")
    d.add_argument("--subtitles", "-s", help="SRT or WebVTT file or URL: describe only in pauses")
    d.add_argument("--format", "-f", choices=[f.value for f in OutputFormat], default="json")
    d.add_argument("--output", "-o", help="output file (default: standard output)")
    d.add_argument(
        "--model",
        "-m",
        default=DEFAULT_MODEL,
        help=f"hub id or local directory of a BLIP/BLIP-2 model (known: {', '.join(KNOWN_MODELS)})",
    )
    d.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    d.add_argument("--beams", type=int, default=3, help="beam search width")
    d.add_argument("--max-new-tokens", type=int, default=30, help="longest caption, tokens")
    d.add_argument("--repetition-penalty", type=float, default=1.0)
    d.add_argument("--batch-size", type=int, default=None, help="frames per model call")
    d.add_argument("--offload", action="store_true", help="spread BLIP-2 over GPU and CPU")
    d.add_argument("--local-files-only", action="store_true", help="never contact the hub")
    d.add_argument("--cache-dir", help="Hugging Face cache directory")
    d.add_argument("--min-gap", type=float, default=2.0, help="shortest usable pause, seconds")
    d.add_argument("--frame-offset", type=float, default=1.0, help="seconds into each scene")
    d.add_argument("--detector", choices=sorted(DETECTORS), default="adaptive")
    d.add_argument("--threshold", type=float, default=None, help="scene detector threshold")
    d.add_argument("--no-fades", action="store_true", help="do not cut on fades to black")
    d.add_argument(
        "--novelty",
        choices=sorted(SCORERS),
        default=DEFAULT_SCORER,
        help="how captions are compared to recent ones: METEOR or sentence embeddings",
    )
    d.add_argument(
        "--novelty-threshold",
        type=float,
        default=None,
        help="drop a caption at least this similar to a recent one (default: per scorer)",
    )
    d.add_argument(
        "--speech",
        choices=[s.value for s in SpeechSource],
        default=SpeechSource.AUTO.value,
        help="dialogue from subtitles, the audio track, both, or auto (subtitles if given)",
    )
    d.add_argument("--words-per-second", type=float, default=2.5, help="narration speed")
    d.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    serve = commands.add_parser(
        "serve", help="run the HTTP service (settings from DESCRIBER_* environment variables)"
    )
    serve.add_argument("--host", help="listen address (overrides DESCRIBER_HOST)")
    serve.add_argument("--port", type=int, help="listen port (overrides DESCRIBER_PORT)")
    return parser


class _LazyCaptioner:
    """Loads the model on first use, so bad inputs are reported before a slow model load."""

    def __init__(self, name_or_path: str, options: CaptionOptions) -> None:
        self._name = name_or_path
        self._options = options
        self._captioner: Captioner | None = None

    def caption(
        self, images: Sequence[Image.Image], *, max_new_tokens: int | None = None
    ) -> list[str]:
        if self._captioner is None:
            self._captioner = load_captioner(self._name, self._options)
        return self._captioner.caption(images, max_new_tokens=max_new_tokens)


class _ProgressBar:
    """tqdm bar on stderr: seconds of video scanned, with scenes found and captioned."""

    def __init__(self, enabled: bool) -> None:
        self._bar: tqdm[None] | None = None
        self._enabled = enabled

    def __call__(self, progress: Progress) -> None:
        if not self._enabled or progress.stage == Stage.DOWNLOADING:
            return
        if self._bar is None:
            total = round(progress.duration, 1) if progress.duration else None
            self._bar = tqdm(total=total, unit="s", desc="scanning", file=sys.stderr, leave=False)
        self._bar.n = round(progress.scanned_seconds, 1)
        self._bar.set_description(progress.stage.value)
        self._bar.set_postfix(scenes=progress.scenes_found, captioned=progress.scenes_captioned)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _options(args: argparse.Namespace) -> tuple[CaptionOptions, DescribeOptions]:
    """Options from the command line; raises ValueError for an out-of-range value."""
    caption_options = CaptionOptions(
        num_beams=args.beams,
        max_new_tokens=args.max_new_tokens,
        repetition_penalty=args.repetition_penalty,
        batch_size=args.batch_size,
        device=args.device,
        offload=args.offload,
        local_files_only=args.local_files_only,
        cache_dir=args.cache_dir,
    )
    options = DescribeOptions(
        frame_offset=args.frame_offset,
        min_gap=args.min_gap,
        novelty_scorer=args.novelty,
        novelty_threshold=args.novelty_threshold,
        words_per_second=args.words_per_second,
        scenes=SceneOptions(
            detector=args.detector, threshold=args.threshold, fades=not args.no_fades
        ),
    )
    return caption_options, options


def _describe(
    args: argparse.Namespace,
    caption_options: CaptionOptions,
    options: DescribeOptions,
    stdout: TextIO,
) -> int:
    captioner = _LazyCaptioner(args.model, caption_options)
    bar = _ProgressBar(enabled=not args.quiet)
    with ExitStack() as stack:
        stack.callback(bar.close)
        out = stdout
        if args.output:
            out = stack.enter_context(open(args.output, "w", encoding="utf-8"))
        writer = stack.enter_context(open_writer(OutputFormat(args.format), out))
        for description in describe_media(
            args.video,
            captioner,
            subtitles=args.subtitles,
            options=options,
            speech_source=SpeechSource(args.speech),
            on_progress=bar,
        ):
            writer.write(description)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from app.config import Settings
    from app.service.server import run_server

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        print(f"error: invalid settings: {problems}", file=sys.stderr)
        return 1
    run_server(settings)
    return 0


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        caption_options, options = _options(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        return _describe(args, caption_options, options, stdout or sys.stdout)
    except DescriberError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
