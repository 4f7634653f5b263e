"""Command line: ``python -m app describe VIDEO`` writes timed descriptions; ``serve`` runs the API.

Both commands read the same settings as the service (``DESCRIBER_*`` environment variables,
see README.md); command-line options override them. Errors print one line on stderr, without
a traceback, and exit with status 1 (bad input or model), 2 (bad option) or 130 (interrupted).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TextIO

from PIL import Image
from pydantic import ValidationError
from tqdm import tqdm

from app.config import Settings
from app.errors import DescriberError
from app.models import KNOWN_MODELS, Captioner, CaptionOptions, CaptionRequest, load_captioner
from app.pipeline.describe import SpeechSource, describe_media
from app.pipeline.novelty import SCORERS
from app.pipeline.scenes import DETECTORS
from app.pipeline.types import Progress, Stage
from app.pipeline.writers import OutputFormat, open_writer

logger = logging.getLogger("app.cli")

# Options that override a setting: (flags, Settings field, add_argument keywords).
_ON = {"action": "store_const", "const": True}
_SETTING_OPTIONS: list[tuple[tuple[str, ...], str, dict[str, object]]] = [
    (("--model", "-m"), "model", {"help": f"hub id or directory ({', '.join(KNOWN_MODELS)})"}),
    (("--device",), "device", {"help": "auto, cpu, cuda or cuda:N"}),
    (("--beams",), "beams", {"type": int, "help": "beam search width"}),
    (("--max-new-tokens",), "max_new_tokens", {"type": int, "help": "longest caption, tokens"}),
    (("--repetition-penalty",), "repetition_penalty", {"type": float}),
    (("--batch-size",), "model_batch_size", {"type": int, "help": "images per forward pass"}),
    (("--offload",), "offload", {**_ON, "help": "spread the model over GPU and CPU"}),
    (("--local-files-only",), "local_files_only", {**_ON, "help": "never contact the hub"}),
    (("--cache-dir",), "cache_dir", {"help": "Hugging Face cache directory"}),
    (("--min-gap",), "min_gap", {"type": float, "help": "shortest usable pause, seconds"}),
    (("--frame-offset",), "frame_offset", {"type": float, "help": "seconds into each scene"}),
    (("--detector",), "detector", {"choices": sorted(DETECTORS)}),
    (("--threshold",), "detector_threshold", {"type": float, "help": "detector threshold"}),
    (("--no-fades",), "fades", {**_ON, "const": False, "help": "no cuts on fades to black"}),
    (
        ("--every-frame",),
        "skip_nonref_frames",
        {**_ON, "const": False, "help": "decode non-reference frames too (slower)"},
    ),
    (("--novelty",), "novelty_scorer", {"choices": sorted(SCORERS), "help": "repeat check"}),
    (("--novelty-threshold",), "novelty_threshold", {"type": float, "help": "repeat if >="}),
    (("--speech",), "speech_source", {"choices": [s.value for s in SpeechSource]}),
    (("--words-per-second",), "words_per_second", {"type": float, "help": "narration speed"}),
]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    d = commands.add_parser(
        "describe",
        help="describe a video file or URL",
        epilog="Options without a value given take the DESCRIBER_* setting or its default.",
    )
    d.add_argument("video", help="video file path or http(s) URL")
    d.add_argument(
        "--subtitles", "-s", help="SRT, WebVTT or ASS/SSA file or URL: describe only in pauses"
    )
    d.add_argument("--format", "-f", choices=[f.value for f in OutputFormat], default="json")
    d.add_argument("--output", "-o", help="output file (default: standard output)")
    d.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    for flags, field, keywords in _SETTING_OPTIONS:
        d.add_argument(*flags, dest=field, default=None, **keywords)  # type: ignore[arg-type]

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default=None, help="listen address (DESCRIBER_HOST)")
    serve.add_argument("--port", type=int, default=None, help="listen port (DESCRIBER_PORT)")
    return parser


def _settings(args: argparse.Namespace, fields: Sequence[str]) -> Settings:
    """The settings from the environment, with the options given on the command line."""
    overrides = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    return Settings(**overrides)


class _LazyCaptioner:
    """Loads the model on first use, so bad inputs are reported before a slow model load."""

    def __init__(self, name_or_path: str, options: CaptionOptions) -> None:
        self._name = name_or_path
        self._options = options
        self._captioner: Captioner | None = None

    def caption(
        self, images: Sequence[Image.Image], requests: Sequence[CaptionRequest] | None = None
    ) -> list[str]:
        if self._captioner is None:
            self._captioner = load_captioner(self._name, self._options)
        return self._captioner.caption(images, requests)


class _ProgressBar:
    """tqdm bar on stderr: seconds of video scanned, with scenes found and captioned; a
    summary of what became of the scenes when it closes."""

    def __init__(self, enabled: bool) -> None:
        self._bar: tqdm[None] | None = None
        self._enabled = enabled
        self._last: Progress | None = None

    def __call__(self, progress: Progress) -> None:
        if not self._enabled or progress.stage in (None, Stage.DOWNLOADING):
            return
        if self._bar is None:
            total = round(progress.duration, 1) if progress.duration else None
            self._bar = tqdm(total=total, unit="s", desc="scanning", file=sys.stderr, leave=False)
        self._bar.n = round(progress.scanned_seconds, 1)
        self._bar.set_description(str(progress.stage), refresh=False)
        self._bar.set_postfix(
            scenes=progress.scenes_found, captioned=progress.scenes_captioned, refresh=False
        )
        self._bar.refresh()  # one line per update, not one per field
        self._last = progress

    def close(self) -> None:
        if self._bar is None:
            return
        self._bar.close()
        last = self._last
        if last is not None and last.stage == Stage.DONE:
            print(
                f"{last.scenes_found} scenes: {last.scenes_without_pause} without a pause, "
                f"{last.scenes_similar} like the last captioned one, {last.scenes_captioned} "
                f"captioned, {last.captions_dropped} captions dropped as repeats or empty",
                file=sys.stderr,
            )


def _describe(args: argparse.Namespace, settings: Settings, stdout: TextIO) -> int:
    captioner = _LazyCaptioner(settings.model, settings.caption_options())
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
            options=settings.media_options(),
            on_progress=bar,
        ):
            writer.write(description)
    return 0


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    fields = ["host", "port"] if args.command == "serve" else [f for _, f, _ in _SETTING_OPTIONS]
    try:
        settings = _settings(args, fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        parser.error(f"invalid settings: {problems}")
    if args.command == "serve":
        from app.service.serve import run_server

        run_server(settings)
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _describe(args, settings, stdout or sys.stdout)
    except DescriberError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
