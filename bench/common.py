"""Shared helpers of the benchmark scripts: generated videos with known cuts, cut scoring,
peak memory, timing and plain-text tables.

The bench videos are built from shots of ffmpeg's lavfi sources (testsrc2, mandelbrot,
cellauto, life, gradients, sierpinski, colour bars), each with moving content, temporal
film grain (``noise=alls=8:allf=t``) and its own colouring, so that the detectors see
frame-to-frame change inside shots as they do on film. A share of the shot boundaries fade
out to black over one second and back in over the next; some shots return to the shot
before the previous one (shot / reverse shot). Each shot is rendered and encoded once with
libx264 (CRF 23 with a bitrate cap, B-frames and CABAC, like a web video) in FFmpeg's
libraries through PyAV, so no ffmpeg program is needed, and cached under the work directory;
a video is the concatenation of its shots' packets, so the true cut frames are exact.
The shot plan comes from a seeded generator, so a longer video of the same seed starts with
the shots of the shorter one and reuses their files.

Not a test module and not imported by the app: run the scripts in ``bench/`` directly.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import random
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

#: Default directory for generated videos and model directories.
DEFAULT_WORKDIR = Path("/tmp/describer-bench")
#: Bumped whenever the generator changes, so cached files of an older generator are not reused.
GENERATOR_VERSION = 3
#: Frames a detected cut may be away from the true one and still count as found.
DEFAULT_TOLERANCE = 2

T = TypeVar("T")

#: Starting points of the mandelbrot zooms (x, y), all on the set's border where it moves.
_MANDELBROT_POINTS = (
    (-0.743643887037151, 0.13182590420533),
    (-0.7453, 0.1127),
    (-1.25066, 0.02012),
    (-0.16, 1.0405),
    (0.2549870375144766, -0.0005679790528465),
    (-1.7497, 0.0),
)
SOURCES = ("testsrc2", "mandelbrot", "cellauto", "life", "gradients", "sierpinski", "bars")
"""Kinds of shot; consecutive shots are always of different kinds or seeds."""


@dataclass(frozen=True)
class Shot:
    """One shot of a bench video: a lavfi source, its seed and length, fades at its ends."""

    source: str
    seed: int
    frames: int
    fade_in: bool = False
    fade_out: bool = False


@dataclass(frozen=True)
class BenchVideo:
    """A generated bench video and the truth about it."""

    path: Path
    width: int
    height: int
    fps: int
    shots: tuple[Shot, ...]

    @property
    def frame_count(self) -> int:
        return sum(shot.frames for shot in self.shots)

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps

    @property
    def cut_frames(self) -> list[int]:
        """First frame of every shot after the first."""
        cuts: list[int] = []
        frame = 0
        for shot in self.shots[:-1]:
            frame += shot.frames
            cuts.append(frame)
        return cuts

    @property
    def fade_cut_frames(self) -> list[int]:
        """The cuts that fade through black (a subset of ``cut_frames``)."""
        return [
            cut for cut, shot in zip(self.cut_frames, self.shots[:-1], strict=True) if shot.fade_out
        ]

    def fade_windows(self) -> dict[int, tuple[int, int]]:
        """For each fade cut, its whole transition: fade-out start to fade-in end.

        Where in the dark run a detector puts a fade's cut depends on how bright the two
        shots are; any frame of the transition splits the shots correctly, which is how
        gradual transitions are usually scored (TRECVID shot boundary detection).
        """
        return {cut: (cut - self.fps, cut + self.fps - 1) for cut in self.fade_cut_frames}

    def describe(self) -> str:
        """One line saying what the video is."""
        return (
            f"{self.path.name}: {self.width}x{self.height} {self.fps} fps, "
            f"{self.duration:.0f} s, {self.frame_count} frames, {len(self.cut_frames)} cuts "
            f"({len(self.fade_cut_frames)} through black), "
            f"{self.path.stat().st_size / 2**20:.0f} MiB"
        )


def plan_shots(
    duration: float,
    fps: int,
    seed: int,
    *,
    shortest: float = 2.0,
    longest: float = 10.0,
    fade_share: float = 0.25,
    return_share: float = 0.15,
) -> list[Shot]:
    """Draw the shots of a video lasting ``duration`` seconds.

    Args:
        duration: Length of the video, seconds.
        fps: Frame rate.
        seed: Seed of the plan; plans of the same seed share their first shots.
        shortest: Shortest shot, seconds.
        longest: Longest shot, seconds.
        fade_share: Share of boundaries that fade out to black and back in.
        return_share: Share of shots that return to the shot two before (A B A).
    """
    rng = random.Random(seed)
    total = round(duration * fps)
    shots: list[Shot] = []
    fade_before = False
    used = 0
    while used < total:
        frames = round(rng.uniform(shortest, longest) * fps)
        fade_after = rng.random() < fade_share
        returns = rng.random() < return_share
        source = rng.choice(SOURCES)
        shot_seed = rng.randrange(1, 1_000_000)
        if returns and len(shots) >= 2:
            source, shot_seed = shots[-2].source, shots[-2].seed
        elif shots and source == shots[-1].source:
            source = SOURCES[(SOURCES.index(source) + 1) % len(SOURCES)]
        if used + frames >= total - round(shortest * fps):
            # The last shot takes the rest, so the video lasts exactly ``duration``.
            frames = total - used
            fade_after = False
        shots.append(Shot(source, shot_seed, frames, fade_in=fade_before, fade_out=fade_after))
        fade_before = fade_after
        used += frames
    return shots


def _source_filter(shot: Shot, width: int, height: int, fps: int) -> str:
    """The lavfi graph of a shot before grain and fades; costly sources render small."""
    rng = random.Random(shot.seed)
    hue = rng.randrange(360)
    up = f"scale={width}:{height}:flags=bicubic"
    if shot.source == "testsrc2":
        return f"testsrc2=s={width}x{height}:r={fps},hue=h={hue}"
    if shot.source == "mandelbrot":
        x, y = _MANDELBROT_POINTS[shot.seed % len(_MANDELBROT_POINTS)]
        return (
            f"mandelbrot=s={width // 4}x{height // 4}:r={fps}:maxiter=256:"
            f"start_x={x}:start_y={y}:start_scale={rng.uniform(0.5, 3.0):.3f}:"
            f"end_scale={rng.uniform(0.001, 0.05):.4f}:end_pts={rng.randrange(200, 800)},"
            f"{up},hue=h={hue}"
        )
    if shot.source == "cellauto":
        rule = rng.choice((18, 30, 45, 73, 90, 110, 150))
        r, g, b = (rng.uniform(0.3, 1.0) for _ in range(3))
        return (
            f"cellauto=s={width // 2}x{height // 2}:r={fps}:rule={rule}:ratio=0.5:"
            f"seed={shot.seed},scale={width}:{height}:flags=neighbor,format=rgb24,"
            f"lutrgb=r=val*{r:.2f}:g=val*{g:.2f}:b=val*{b:.2f}"
        )
    if shot.source == "life":
        colours = [f"0x{rng.randrange(1 << 24):06x}" for _ in range(3)]
        return (
            f"life=s={width // 4}x{height // 4}:r={fps}:ratio=0.3:seed={shot.seed}:mold=10:"
            f"life_color={colours[0]}:death_color={colours[1]}:mold_color={colours[2]},"
            f"scale={width}:{height}:flags=neighbor"
        )
    if shot.source == "gradients":
        return (
            f"gradients=s={width // 2}x{height // 2}:r={fps}:seed={shot.seed}:"
            f"speed={rng.uniform(0.01, 0.05):.3f}:n={rng.randrange(2, 6)},{up}"
        )
    if shot.source == "sierpinski":
        kind = rng.choice(("carpet", "triangle"))
        r, g, b = (rng.uniform(0.3, 1.0) for _ in range(3))
        return (
            f"sierpinski=s={width // 2}x{height // 2}:r={fps}:seed={shot.seed}:jump=1:"
            f"type={kind},{up},format=rgb24,lutrgb=r=val*{r:.2f}:g=val*{g:.2f}:b=val*{b:.2f}"
        )
    if shot.source == "bars":
        # A static shot: only the grain moves.
        return f"smptehdbars=s={width}x{height}:r={fps},hue=h={hue}"
    raise ValueError(f"unknown shot source {shot.source!r}; choose one of {', '.join(SOURCES)}")


def _shot_graph(shot: Shot, width: int, height: int, fps: int) -> str:
    chain = [_source_filter(shot, width, height, fps), "format=yuv420p", "noise=alls=8:allf=t"]
    if shot.fade_out:
        chain.append(f"fade=t=out:s={shot.frames - fps}:n={fps}")
    if shot.fade_in:
        chain.append(f"fade=t=in:s=0:n={fps}")
    return ",".join(chain)


def _encoder_options(width: int, height: int, fps: int) -> dict[str, str]:
    # CRF 23 capped at about 0.16 bit per pixel (8 Mbit/s at 1080p25, 3.7 at 720p25): the
    # range of web and streaming video. "superfast" keeps CABAC, deblocking and B-frames, so
    # decoding costs what it costs on real files.
    cap = round(width * height * fps * 0.16 / 1000)
    return {
        "preset": "superfast",
        "crf": "23",
        "maxrate": f"{cap}k",
        "bufsize": f"{2 * cap}k",
        "g": "250",
    }


def _encode_shot(shot: Shot, width: int, height: int, fps: int, directory: Path) -> Path:
    """Render a shot's lavfi graph and encode it with libx264, both in FFmpeg's libraries
    through PyAV (no ffmpeg program needed, so it runs on machines that only have wheels)."""
    import av
    from av.video.frame import PictureType

    graph = _shot_graph(shot, width, height, fps)
    key = hashlib.sha1(f"{GENERATOR_VERSION} {graph} {shot.frames}".encode()).hexdigest()[:16]
    path = directory / f"shot-{key}.mp4"
    if path.exists():
        return path
    # Two shots of a video can share a graph (a return to an earlier shot): each process
    # writes its own partial file, and the rename is atomic.
    partial = path.with_suffix(f".{os.getpid()}.part.mp4")
    with av.open(graph, format="lavfi") as source, av.open(str(partial), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options=_encoder_options(width, height, fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, frame in enumerate(source.decode(video=0)):
            if index == shot.frames:
                break
            frame.pts, frame.time_base = index, Fraction(1, fps)
            # Some lavfi sources mark their frames "I", which the encoder would obey (every
            # frame a keyframe): let the encoder place its keyframes.
            frame.pict_type = PictureType.NONE
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    partial.replace(path)
    return path


def concatenate(files: Sequence[Path], path: Path) -> None:
    """Join files of one encoder setting (shots, or a clip to itself) without re-encoding
    (like ffmpeg's concat demuxer with ``-c copy``): each file's packets shifted by the
    length of those before."""
    import av

    with (
        av.open(str(files[0])) as first,
        av.open(str(path), "w", options={"movflags": "+faststart"}) as out,
    ):
        stream = out.add_stream_from_template(first.streams.video[0])
        offset = 0
        for file in files:
            with av.open(str(file)) as shot:
                source = shot.streams.video[0]
                end = 0
                for packet in shot.demux(source):
                    if packet.size == 0:
                        continue
                    assert packet.pts is not None and packet.dts is not None
                    end = max(end, packet.pts + (packet.duration or 0))
                    packet.pts += offset
                    packet.dts += offset
                    packet.stream = stream
                    out.mux(packet)
                offset += end


def film_index(path: Path) -> int:
    """The index of the video stream the project scans (``video.film_stream``: not cover art
    or another still picture), for ffmpeg's ``-map 0:N``."""
    import av

    from app.pipeline.video import film_stream

    with av.open(str(path)) as container:
        stream = film_stream(container)
        if stream is None:
            raise SystemExit(f"{path} has no video stream to scan")
        return stream.index


def film_end(path: Path) -> float:
    """Seconds from the film's start to the end of its last frame, read from the packets of
    the stream the project scans (no decoding): where its last scene ends. A stream without
    timestamps: its packets counted at its frame rate."""
    import av

    from app.pipeline.video import film_stream

    with av.open(str(path)) as container:
        stream = film_stream(container)
        assert stream is not None and stream.time_base is not None, f"{path}: no video stream"
        base = stream.time_base
        origin = container.start_time / av.time_base if container.start_time else 0.0
        ends, frames = [], 0
        for packet in container.demux(stream):
            frames += packet.size > 0
            if packet.pts is not None:
                ends.append(float((packet.pts + (packet.duration or 0)) * base) - origin)
        if ends:
            return max(ends)
        # A raw stream (an .h264 file, no timestamps): its frames one after another, as the
        # project counts them (``VideoReader.timed``).
        rate = stream.guessed_rate or stream.average_rate
        assert rate, f"{path}: neither timestamps nor a frame rate"
        return frames / float(rate)


def count_packets(path: Path) -> int:
    """Frames in the video stream the project scans, counted from packets (no decoding)."""
    import av

    from app.pipeline.video import film_stream

    with av.open(str(path)) as container:
        stream = film_stream(container)
        assert stream is not None, f"{path} has no video stream"
        return sum(1 for packet in container.demux(stream) if packet.size)


def bench_video(
    workdir: Path,
    *,
    duration: float,
    size: tuple[int, int],
    fps: int = 25,
    seed: int = 1,
    jobs: int = 2,
) -> BenchVideo:
    """Build (or reuse from ``workdir``) a bench video and return it with its true cuts.

    Args:
        workdir: Cache directory; shots go to ``workdir/shots-WxH-fps``.
        duration: Length, seconds.
        size: Width and height.
        fps: Frame rate.
        seed: Seed of the shot plan.
        jobs: shots encoded at once (processes) while building.
    """
    width, height = size
    shots = plan_shots(duration, fps, seed)
    shot_dir = workdir / f"shots-{width}x{height}-{fps}"
    shot_dir.mkdir(parents=True, exist_ok=True)
    plan_key = hashlib.sha1(json.dumps([GENERATOR_VERSION, shots], default=str).encode())
    name = f"bench-{width}x{height}-{fps}fps-{duration:g}s-seed{seed}-{plan_key.hexdigest()[:8]}"
    path = workdir / f"{name}.mp4"
    video = BenchVideo(path=path, width=width, height=height, fps=fps, shots=tuple(shots))
    if path.exists():
        return video
    started = time.perf_counter()
    log(f"building {path.name} from {len(shots)} shots (cached under {shot_dir}) ...")
    # Processes, not threads: rendering the lavfi sources holds the GIL.
    encode = functools.partial(
        _encode_shot, width=width, height=height, fps=fps, directory=shot_dir
    )
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        files = list(pool.map(encode, shots))
    partial = path.with_suffix(".part.mp4")
    concatenate(files, partial)
    found = count_packets(partial)
    if found != video.frame_count:
        raise RuntimeError(f"{partial} holds {found} frames, {video.frame_count} were planned")
    partial.replace(path)
    log(f"built {path.name} in {time.perf_counter() - started:.0f} s")
    return video


#: Re-encodings of a bench video: (codec, options, container suffix). ``x264-default`` is
#: libx264 with its defaults (preset medium, CRF 23, keyframes at scene cuts, at most 250
#: frames apart), what most H.264 films are; ``x264-fixed-gop`` is a streaming encode with a
#: keyframe every 2 s at 25 fps and scene-cut keyframes off (``-g 50 -sc_threshold 0``);
#: ``vp9`` is libvpx-vp9 at its defaults but for a bitrate and its fastest speed setting.
ENCODINGS: dict[str, tuple[str, dict[str, str], str]] = {
    "x264-default": ("libx264", {"crf": "23"}, ".mp4"),
    "x264-fixed-gop": ("libx264", {"crf": "23", "g": "50", "x264-params": "scenecut=0"}, ".mp4"),
    "vp9": ("libvpx-vp9", {"b": "4M", "deadline": "realtime", "cpu-used": "8"}, ".webm"),
}


def encode_variant(video: BenchVideo, encoding: str) -> Path:
    """Re-encode a bench video with one of ``ENCODINGS`` (cached beside it); same frames, so
    the same true cuts, but the encoder's own keyframe placement."""
    import av
    from av.video.frame import PictureType

    codec, options, suffix = ENCODINGS[encoding]
    path = video.path.with_name(f"{video.path.stem}-{encoding}{suffix}")
    if path.exists():
        return path
    started = time.perf_counter()
    log(f"encoding {path.name} ...")
    partial = path.with_name(f".{path.stem}.part{suffix}")
    with av.open(str(video.path)) as source, av.open(str(partial), "w") as out:
        stream = out.add_stream(codec, rate=video.fps, options=options)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        for index, frame in enumerate(source.decode(video=0)):
            frame.pts, frame.time_base = index, Fraction(1, video.fps)
            # A decoded keyframe says "I", which FFmpeg's encoders obey: forget it, so that
            # the encoder places its own keyframes.
            frame.pict_type = PictureType.NONE
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    partial.replace(path)
    log(f"encoded {path.name} in {time.perf_counter() - started:.0f} s")
    return path


def parse_size(text: str) -> tuple[int, int]:
    """``"1920x1080"`` as ``(1920, 1080)``, for argparse."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must look like 1920x1080, got {text!r}") from exc
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"size must be even and at least 64x64, got {text!r}")
    return width, height


# --- cut scoring -------------------------------------------------------------------------


@dataclass(frozen=True)
class CutScore:
    """Detected cuts against the true ones, matched one to one within a tolerance."""

    truth: int
    found: int
    offsets: tuple[tuple[int, int], ...]
    """(true frame, detected frame - true frame) of every matched cut."""
    missed: tuple[int, ...]
    """True cuts nothing was matched to."""
    extra: tuple[int, ...]
    """Detected cuts matched to no true cut."""

    @property
    def precision(self) -> float:
        return len(self.offsets) / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        return len(self.offsets) / self.truth if self.truth else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def errors(self) -> str:
        """The non-zero offsets, misses and false cuts, in frames, for a report line."""
        moved = [f"{truth}{offset:+d}" for truth, offset in self.offsets if offset]
        parts = [
            f"off: {', '.join(moved) or 'none'}",
            f"missed: {', '.join(map(str, self.missed)) or 'none'}",
            f"false: {', '.join(map(str, self.extra)) or 'none'}",
        ]
        return "; ".join(parts)


def score_cuts(
    truth: Sequence[int],
    found: Sequence[int],
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    windows: Mapping[int, tuple[int, int]] | None = None,
) -> CutScore:
    """Match detected cut frames to true ones one to one, closest pairs first.

    Args:
        truth: True cut frames.
        found: Detected cut frames.
        tolerance: Frames a detection may be off a true cut and still match it.
        windows: For some true cuts, the range of frames (inclusive) a detection may lie in
            instead, e.g. the whole transition of a fade through black.
    """
    windows = windows or {}

    def allowed(t: int, f: int) -> bool:
        low, high = windows.get(t, (t - tolerance, t + tolerance))
        return low <= f <= high

    pairs = sorted((abs(f - t), t, f) for t in truth for f in found if allowed(t, f))
    used_truth: set[int] = set()
    used_found: set[int] = set()
    offsets: list[tuple[int, int]] = []
    for _distance, t, f in pairs:
        if t in used_truth or f in used_found:
            continue
        used_truth.add(t)
        used_found.add(f)
        offsets.append((t, f - t))
    return CutScore(
        truth=len(truth),
        found=len(found),
        offsets=tuple(sorted(offsets)),
        missed=tuple(t for t in truth if t not in used_truth),
        extra=tuple(f for f in found if f not in used_found),
    )


def scdet_cuts(path: Path, fps: float, threshold: float = 10.0) -> list[int]:
    """Cut frames that ffmpeg's ``scdet`` filter finds (its default threshold, 10): a
    reference for a film whose true cuts nobody wrote down."""
    import subprocess

    cmd = [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path),
        "-map", f"0:{film_index(path)}", "-vf",
        f"scdet=threshold={threshold}:sc_pass=1,metadata=mode=print:key=lavfi.scd.time:file=-",
        "-f", "null", "-",
    ]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    times = [float(line.split("=", 1)[1]) for line in out.splitlines() if "lavfi.scd.time=" in line]
    return seconds_to_frames(times, fps)


def seconds_to_frames(times: Sequence[float], fps: float) -> list[int]:
    """Cut times, seconds, as frame indices."""
    return [round(t * fps) for t in times]


# --- memory ------------------------------------------------------------------------------


def max_rss_bytes() -> int:
    """Peak resident memory of this process so far (ru_maxrss; kilobytes on Linux)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def current_rss_bytes() -> int:
    """Resident memory of this process now (psutil, else /proc, else the peak so far)."""
    try:
        import psutil
    except ImportError:
        statm = Path("/proc/self/statm")
        if statm.exists():
            return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return max_rss_bytes()
    return int(psutil.Process().memory_info().rss)


@dataclass
class RssSampler:
    """Samples this process's RSS in a thread: the peak within a ``with`` block.

    ru_maxrss only ever grows, so it cannot give the peak of one phase of a run; sampling
    every ``interval`` seconds can miss a spike shorter than that.
    """

    interval: float = 0.02
    peak: int = 0
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        rss = current_rss_bytes()
        self.samples.append(rss)
        self.peak = max(self.peak, rss)

    def __enter__(self) -> RssSampler:
        self._sample()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()


def mib(size: float) -> str:
    return f"{size / 2**20:,.0f} MiB"


# --- timing and output -------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Wall time and CPU time (user + system, this process and waited-for children)."""

    wall: float
    cpu: float


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(function: Callable[[], T]) -> tuple[Timing, T]:
    """Wall and CPU seconds of one call, and its result.

    CPU time hardly depends on what else runs on the machine, wall time does: on a shared
    machine compare CPU seconds when wall times scatter.
    """
    cpu = _cpu_seconds()
    started = time.perf_counter()
    result = function()
    wall = time.perf_counter() - started
    return Timing(wall, _cpu_seconds() - cpu), result


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def log(message: str) -> None:
    """Progress for the person watching, on stderr so that stdout holds only the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def load_average() -> float:
    """The 1-minute load average (0 where the platform has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def machine_line(load_at_start: float | None = None) -> str:
    """CPU count and load, printed with every report: other work on the machine skews timings."""
    start = load_average() if load_at_start is None else load_at_start
    return (
        f"machine: {os.cpu_count()} CPUs, load average {start:.2f} at start, "
        f"{load_average():.2f} at the end; python {sys.version.split()[0]}"
    )


def add_common_arguments(parser: argparse.ArgumentParser, *, repeats: int = 2) -> None:
    """``--workdir``, ``--repeats``, ``--seed`` and ``--jobs``, shared by every script."""
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help=f"cache for generated videos and models (default {DEFAULT_WORKDIR})",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=repeats,
        help=f"runs of each measurement; the median is reported (default {repeats})",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the video's shot plan")
    parser.add_argument(
        "--jobs", type=int, default=2, help="shot encoders at once while building videos"
    )
