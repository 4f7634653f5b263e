"""Command line: ``python -m app describe VIDEO`` writes timed descriptions, ``scenes VIDEO``
lists the scenes the same scan finds, ``serve`` runs the API.

The commands read the same settings as the service (``DESCRIBER_*`` environment variables,
see README.md); command-line options override them. Errors print one line on stderr, without
a traceback, and exit with status 1 (bad input or model), 2 (bad option) or 130 (interrupted).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TextIO

from PIL import Image
from pydantic import ValidationError
from tqdm import tqdm

from app.config import Settings
from app.errors import DescriberError
from app.models import KNOWN_MODELS, Captioner, CaptionOptions, CaptionRequest
from app.models.loader import CaptionerChoice, choose_captioner
from app.models.translators import TranslateOptions, Translator, load_translator
from app.pipeline.describe import SpeechSource, describe_media
from app.pipeline.narration import Narrator, narrate
from app.pipeline.novelty import AUTO_SCORER, SCORERS
from app.pipeline.scan import list_scenes
from app.pipeline.scenes import DETECTORS, ScanMode
from app.pipeline.soundtrack import (
    AUDIO_FORMATS,
    FILM_FORMATS,
    check_output,
    film_duration,
    mix_film,
    write_track,
)
from app.pipeline.sources import fetch
from app.pipeline.tts import load_engine
from app.pipeline.types import Progress, Stage
from app.pipeline.video import VideoReader
from app.pipeline.writers import OutputFormat, SceneListFormat, open_writer, write_scene_list
from app.quiet import disable_library_progress_bars, route_library_logs

logger = logging.getLogger("app.cli")

# Options that override a setting: (flags, Settings field, add_argument keywords). The help
# text gets the setting's variable and default appended (``_with_default``).
_ON = {"action": "store_const", "const": True}
_SETTING_OPTIONS: list[tuple[tuple[str, ...], str, dict[str, object]]] = [
    (
        ("--model", "-m"),
        "model",
        {
            "metavar": "NAME_OR_DIR",
            "help": f"hub id or local directory ({', '.join(KNOWN_MODELS)})",
        },
    ),
    (("--device",), "device", {"metavar": "DEVICE", "help": "auto, cpu, cuda or cuda:N"}),
    (
        ("--api-base",),
        "api_base",
        {"metavar": "URL", "help": "OpenAI-compatible endpoint; --model names its model"},
    ),
    (
        ("--frames-per-scene",),
        "frames_per_scene",
        {"type": int, "metavar": "N", "help": "frames of each scene shown to the captioner"},
    ),
    (("--prompt-file",), "prompt_file", {"metavar": "FILE", "help": "prompt template"}),
    (("--beams",), "beams", {"type": int, "metavar": "N", "help": "beam search width"}),
    (
        ("--max-new-tokens",),
        "max_new_tokens",
        {"type": int, "metavar": "N", "help": "longest caption, tokens"},
    ),
    (
        ("--repetition-penalty",),
        "repetition_penalty",
        {"type": float, "metavar": "X", "help": "penalty on repeated tokens; 1.0 is none"},
    ),
    (
        ("--batch-size",),
        "model_batch_size",
        {"type": int, "metavar": "N", "help": "images per forward pass"},
    ),
    (("--offload",), "offload", {**_ON, "help": "spread the model over GPU and CPU"}),
    (("--local-files-only",), "local_files_only", {**_ON, "help": "never contact the hub"}),
    (("--cache-dir",), "cache_dir", {"metavar": "DIR", "help": "Hugging Face cache directory"}),
    (
        ("--min-gap",),
        "min_gap",
        {"type": float, "metavar": "SECONDS", "help": "shortest usable pause"},
    ),
    (
        ("--frame-offset",),
        "frame_offset",
        {"type": float, "metavar": "SECONDS", "help": "how far into each scene its frame is"},
    ),
    (("--detector",), "detector", {"choices": sorted(DETECTORS), "help": "scene detector"}),
    (
        ("--threshold",),
        "detector_threshold",
        {"type": float, "metavar": "X", "help": "the scene detector's threshold"},
    ),
    (("--no-fades",), "fades", {**_ON, "const": False, "help": "no cuts on fades to black"}),
    (
        ("--every-frame",),
        "skip_nonref_frames",
        {**_ON, "const": False, "help": "decode non-reference frames too (slower)"},
    ),
    (
        ("--scan",),
        "scan",
        {
            "choices": [m.value for m in ScanMode],
            "help": "keyframes: decode fully only where a cut may lie; full: every frame",
        },
    ),
    (
        ("--scan-workers",),
        "scan_workers",
        {"type": int, "metavar": "N", "help": "processes that share the full scan"},
    ),
    (
        ("--scan-chunk",),
        "scan_chunk_length",
        {"type": float, "metavar": "SECONDS", "help": "video each scan worker takes at a time"},
    ),
    (
        ("--decode-device",),
        "decode_device",
        {"help": "cpu, or cuda / cuda:N to decode with the GPU's NVDEC"},
    ),
    (
        ("--novelty",),
        "novelty_scorer",
        {"choices": [AUTO_SCORER, *sorted(SCORERS)], "help": "repeat check"},
    ),
    (
        ("--novelty-threshold",),
        "novelty_threshold",
        {
            "type": float,
            "metavar": "X",
            "help": "a caption this similar to a recent one is dropped",
        },
    ),
    (
        ("--speech",),
        "speech_source",
        {"choices": [s.value for s in SpeechSource], "help": "where dialogue is found"},
    ),
    (
        ("--language", "-l"),
        "language",
        {"metavar": "CODE", "help": "the viewer's language, ISO 639-1 (en, ru)"},
    ),
    (
        ("--translator",),
        "translator",
        {
            "metavar": "NAME_OR_DIR",
            "help": "translation model (hub id or directory) for an English-only captioner "
            "when the language is not en; auto: Helsinki-NLP/opus-mt-en-{language}; none: "
            "no translator",
        },
    ),
    (
        ("--words-per-second",),
        "words_per_second",
        {"type": float, "metavar": "X", "help": "narration speed"},
    ),
    # Narration (--audio, --mix): the voice and how fast it speaks.
    (("--tts",), "tts", {"metavar": "ENGINE", "help": "text-to-speech engine (espeak, piper)"}),
    (
        ("--voice",),
        "voice",
        {"metavar": "VOICE", "help": "the engine's voice (espeak-ng name, Piper .onnx or id)"},
    ),
    (
        ("--rate",),
        "tts_rate",
        {"type": float, "metavar": "X", "help": "speaking speed, 1.0 is the voice's normal"},
    ),
]

#: How a default of None reads, for the options whose setting has one.
_NONE_MEANS = {
    "model_batch_size": "picked from free GPU memory",
    "cache_dir": "the Hugging Face default",
    "detector_threshold": "the detector's own",
    "novelty_threshold": "the scorer's own",
    "voice": "the engine's voice for --language",
    "max_new_tokens": "the captioner's own",
    "api_base": "a local model",
    "frames_per_scene": "the captioner's own",
    "prompt_file": "the default prompt",
}

#: The options of the ``scenes`` command: those that change how scenes are found.
_SCENE_FIELDS = frozenset(
    {
        "frame_offset",
        "detector",
        "detector_threshold",
        "fades",
        "skip_nonref_frames",
        "scan",
        "scan_workers",
        "scan_chunk_length",
        "decode_device",
    }
)

_FLAG_OF = {field: flags[0] for flags, field, _ in _SETTING_OPTIONS} | {
    "host": "--host",
    "port": "--port",
}

_DESCRIPTION = (
    "Timed audio descriptions of a video: 'describe' writes them for one video, 'serve' runs "
    "the HTTP service. Both read the DESCRIBER_* settings (README.md, Configuration); options "
    "override them. Errors print one line and exit with status 1 (bad input or model), 2 (bad "
    "option) or 130 (interrupted)."
)

_SERVE_DESCRIPTION = (
    "Run the HTTP service: POST /process queues a video, GET /jobs/{id} reports it, and each "
    "description is posted to core (DESCRIBER_CORE_URL) as soon as it exists. Every setting "
    "is a DESCRIBER_* environment variable (or a line of a .env file), listed with its "
    "default in README.md under Configuration; API docs are served at /docs. The service "
    "logs one line per event on stderr and shows no progress bars."
)


def _with_default(field: str, help_text: str) -> str:
    """The help text of an option followed by its setting's variable and default."""
    default = Settings.model_fields[field].default
    if default is None:
        shown = _NONE_MEANS.get(field, "unset")
    elif isinstance(default, bool):
        shown = "on" if default else "off"
    else:
        shown = str(getattr(default, "value", default))
    return f"{help_text} (default: {shown}; setting DESCRIBER_{field.upper()})"


def _build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="python -m app", description=_DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = commands.add_parser(
        "describe",
        help="describe a video file or URL",
        description="Describe a video file or URL; descriptions are written as they come.",
        epilog="Options without a value given take the DESCRIBER_* setting or its default.",
    )
    d.add_argument("video", metavar="VIDEO", help="video file path or http(s) URL")
    d.add_argument(
        "--subtitles",
        "-s",
        metavar="FILE_OR_URL",
        help="SRT, WebVTT or ASS/SSA file or URL: describe only in pauses (default: none)",
    )
    d.add_argument(
        "--format",
        "-f",
        choices=[f.value for f in OutputFormat],
        default="json",
        help="output format (default: json)",
    )
    d.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="output file, written whole or not at all (default: standard output)",
    )
    d.add_argument(
        "--audio",
        metavar="FILE",
        help="also speak the descriptions and write them alone on the film's timeline; "
        f"format by extension: {', '.join(AUDIO_FORMATS)} (default: none)",
    )
    d.add_argument(
        "--mix",
        metavar="FILE",
        help="also write the film with an audio-description track added "
        f"({', '.join(FILM_FORMATS)}; default: none)",
    )
    d.add_argument(
        "--quiet", "-q", action="store_true", help="no progress bars at all (default: off)"
    )
    for flags, field, keywords in _SETTING_OPTIONS:
        keywords = {**keywords, "help": _with_default(field, str(keywords["help"]))}
        d.add_argument(*flags, dest=field, default=None, **keywords)  # type: ignore[arg-type]

    scenes = commands.add_parser(
        "scenes",
        help="list the scenes of a video file or URL",
        description=(
            "List the scenes of a video file or URL, with the same scan as 'describe': start, "
            "end and the frame that would be captioned, like PySceneDetect's list-scenes."
        ),
        epilog="Options without a value given take the DESCRIBER_* setting or its default.",
    )
    scenes.add_argument("video", metavar="VIDEO", help="video file path or http(s) URL")
    scenes.add_argument(
        "--format",
        "-f",
        choices=[f.value for f in SceneListFormat],
        default="csv",
        help="output format (default: csv)",
    )
    scenes.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="output file, written whole or not at all (default: standard output)",
    )
    for flags, field, keywords in _SETTING_OPTIONS:
        if field in _SCENE_FIELDS:
            keywords = {**keywords, "help": _with_default(field, str(keywords["help"]))}
            scenes.add_argument(*flags, dest=field, default=None, **keywords)  # type: ignore[arg-type]

    serve = commands.add_parser(
        "serve", help="run the HTTP service", description=_SERVE_DESCRIPTION
    )
    serve.add_argument(
        "--host", metavar="ADDRESS", default=None, help=_with_default("host", "listen address")
    )
    serve.add_argument(
        "--port", metavar="PORT", type=int, default=None, help=_with_default("port", "listen port")
    )
    worker = commands.add_parser(
        "worker",
        help="run a worker process (DESCRIBER_BACKEND=temporal)",
        description=_WORKER_DESCRIPTION,
    )
    return parser, {"describe": d, "scenes": scenes, "serve": serve, "worker": worker}


_WORKER_DESCRIPTION = (
    "Run a worker of the temporal backend (DESCRIBER_BACKEND=temporal): it loads the model "
    "once and runs DESCRIBER_WORKERS jobs at once from the Temporal task queue, delivering "
    "their callbacks. Start as many as the GPUs allow, beside 'serve' processes that take the "
    "requests. Settings are the DESCRIBER_* environment variables, as for serve."
)


def _settings(args: argparse.Namespace, fields: Sequence[str]) -> Settings:
    """The settings from the environment, with the options given on the command line."""
    overrides = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    return Settings(**overrides)


def _settings_problems(exc: ValidationError, given: Sequence[str]) -> str:
    """One line naming each bad option (or the DESCRIBER_* variable when it came from there)."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        if field in given and field in _FLAG_OF:
            name = _FLAG_OF[field]
        elif field:
            name = f"DESCRIBER_{field.upper()}"
        else:
            name = "settings"
        problems.append(f"{name}: {message}")
    return "; ".join(problems)


class _LazyCaptioner:
    """Loads the model on its first caption, while the scan runs.

    What the pipeline asks before the scan starts (frames per scene, languages) is the
    kind's registry line: finding the kind reads only the model's config.json, so neither
    torch nor the weights hold up the first frame, and bad inputs are reported first.
    """

    def __init__(self, name_or_path: str, options: CaptionOptions) -> None:
        self._name = name_or_path
        self._options = options
        self._choice: CaptionerChoice | None = None
        self._captioner: Captioner | None = None

    def _chosen(self) -> CaptionerChoice:
        if self._choice is None:
            self._choice = choose_captioner(self._name, self._options)
        return self._choice

    def _loaded(self) -> Captioner:
        if self._captioner is None:
            self._captioner = self._chosen().load()
        return self._captioner

    @property
    def frames_per_scene(self) -> int:
        """The kind's (its config.json is read once; the model is not loaded)."""
        return self._chosen().kind.frames_per_scene

    @property
    def languages(self) -> frozenset[str] | None:
        """The languages the kind writes (its config.json is read once; the model is not
        loaded)."""
        return self._chosen().kind.languages

    def caption(
        self, images: Sequence[Image.Image], requests: Sequence[CaptionRequest] | None = None
    ) -> list[str]:
        return self._loaded().caption(images, requests)


class _LazyTranslator:
    """Loads the translation model on first use: only a run that needs it loads it."""

    def __init__(self, name_or_path: str, language: str, options: TranslateOptions) -> None:
        self._name = name_or_path
        self.language = language
        self._options = options
        self._translator: Translator | None = None

    def translate(self, texts: Sequence[str]) -> list[str]:
        if self._translator is None:
            self._translator = load_translator(self._name, self.language, self._options)
        return self._translator.translate(texts)


class _ProgressBar:
    """Progress on stderr: a tqdm bar on a terminal; elsewhere (a log file, a pipe) a plain
    line every ``LINE_INTERVAL`` seconds, without carriage returns. A summary of what became
    of the scenes when it closes."""

    LINE_INTERVAL = 5.0

    def __init__(self, enabled: bool, terminal: bool) -> None:
        self._bar: tqdm[None] | None = None
        self._enabled = enabled
        self._terminal = terminal
        self._next_line = 0.0
        self._last: Progress | None = None

    def __call__(self, progress: Progress) -> None:
        if not self._enabled or progress.stage in (None, Stage.DOWNLOADING):
            return
        self._last = progress
        if not self._terminal:
            now = time.monotonic()
            if now >= self._next_line or progress.stage == Stage.DONE:
                self._next_line = now + self.LINE_INTERVAL
                of = f" of {progress.duration:.1f}" if progress.duration else ""
                print(
                    f"{progress.stage.value}: {progress.scanned_seconds:.1f}{of} s, "
                    f"{progress.scenes_found} scenes, {progress.scenes_captioned} captioned",
                    file=sys.stderr,
                    flush=True,
                )
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

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        last = self._last
        if last is not None and last.stage == Stage.DONE:
            print(
                f"{last.scenes_found} scenes: {last.scenes_without_pause} without a pause, "
                f"{last.scenes_similar} like the last captioned one, {last.scenes_captioned} "
                f"captioned, {last.captions_dropped} captions dropped as repeats or empty",
                file=sys.stderr,
            )


class OutputError(DescriberError):
    """The output file cannot be written."""


@contextmanager
def _all_or_nothing(output: str | None, stdout: TextIO) -> Iterator[TextIO]:
    """Where the document goes: a temporary file beside ``output``, renamed onto it once
    complete, or a buffer copied to ``stdout`` once complete. On an error nothing is left."""
    if output is None:
        buffer = io.StringIO()
        yield buffer
        stdout.write(buffer.getvalue())
        stdout.flush()
        return
    target = Path(output)
    try:
        handle, name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            yield out
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _describe(args: argparse.Namespace, settings: Settings, stdout: TextIO) -> int:
    terminal = sys.stderr.isatty()
    if args.quiet or not terminal:
        disable_library_progress_bars()  # transformers' and the hub's own bars
    captioner = _LazyCaptioner(settings.model, settings.caption_options())
    translator_model = settings.translator_model()
    translator = (
        None
        if translator_model is None
        else _LazyTranslator(translator_model, settings.language, settings.translate_options())
    )
    bar = _ProgressBar(enabled=not args.quiet, terminal=terminal)
    media = settings.media_options()
    # Narration: outputs and voice checked before the film is scanned.
    audio = check_output(args.audio, list(AUDIO_FORMATS)) if args.audio else None
    mixed = check_output(args.mix, list(FILM_FORMATS)) if args.mix else None
    narrator = None
    if audio or mixed:
        options = settings.narration_options()
        narrator = Narrator(load_engine(options.tts), options)
    with ExitStack() as stack:
        stack.callback(bar.close)
        clips = []
        # The document (and the track it names) is complete before the film is mixed: a film
        # that cannot be mixed (its error says why) costs the mix, not the descriptions. It
        # is opened first, so that an output that cannot be written fails before a download.
        with _all_or_nothing(args.output, stdout) as out:
            # The audio outputs need the film itself: a URL is downloaded once, here, and
            # kept until the film is mixed.
            video = args.video
            if narrator is not None:
                fetched = fetch(video, options=media.fetch, guard=media.guard)
                video = str(stack.enter_context(fetched))
            src = os.path.relpath(audio, Path(args.output or ".").parent) if audio else None
            with open_writer(
                OutputFormat(args.format), out, language=settings.language, audio=src
            ) as writer:
                descriptions = describe_media(
                    video,
                    captioner,
                    subtitles=args.subtitles,
                    options=media,
                    on_progress=bar,
                    translator=translator,
                )
                if narrator is None:
                    for description in descriptions:
                        writer.write(description)
                    return 0
                for narration in narrate(descriptions, narrator):
                    writer.write(narration.description)
                    clips.append(narration.clip)
                if audio:
                    write_track(audio, clips, film_duration(Path(video)))
        if mixed:
            mix_film(video, clips, mixed, settings.mix_options())
    return 0


def _scenes(args: argparse.Namespace, settings: Settings, stdout: TextIO) -> int:
    media = settings.media_options()
    options = media.describe
    with ExitStack() as stack:
        path = stack.enter_context(
            fetch(args.video, what="video", options=media.fetch, guard=media.guard)
        )
        with VideoReader(path, name=args.video) as reader:
            rate = float(reader.info.frame_rate)
        out = stack.enter_context(_all_or_nothing(args.output, stdout))
        found = list_scenes(
            path,
            options.scenes,
            options.frame_offset,
            name=args.video,
            max_duration=options.max_duration,
        )
        write_scene_list(found, SceneListFormat(args.format), out, rate)
    return 0


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser, commands = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        fields = ["host", "port"]
    elif args.command == "worker":
        fields = []
    else:
        fields = [f for _, f, _ in _SETTING_OPTIONS if hasattr(args, f)]
    try:
        settings = _settings(args, fields)
    except ValidationError as exc:
        given = [f for f in fields if getattr(args, f) is not None]
        commands[args.command].error(_settings_problems(exc, given))
    if args.command in ("serve", "worker") and (missing := settings.unavailable_plugins()):
        # The service may need every plug-in it is configured with: refuse to start rather
        # than fail its jobs. The other commands check what they use when they use it.
        commands[args.command].error("; ".join(missing))
    if args.command == "serve":
        from app.service.serve import run_server

        run_server(settings)
        return 0
    if args.command == "worker":
        if settings.backend == "local":
            commands["worker"].error(
                "the local backend runs jobs in the serve process; 'worker' is for "
                "DESCRIBER_BACKEND=temporal"
            )
        from app.service.work import run_worker

        return run_worker(settings)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    route_library_logs()
    run = _scenes if args.command == "scenes" else _describe
    try:
        return run(args, settings, stdout or sys.stdout)
    except DescriberError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # standard output closed, a write failed...
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
