"""Scene detection and frame grabbing in one decoding pass, on generated colour-coded video."""

from __future__ import annotations

import itertools
import logging
import random
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest
from scenedetect import FrameTimecode
from scenedetect.detectors import AdaptiveDetector, ContentDetector, threshold_detector

from app.errors import (
    DecoderUnavailable,
    VideoIncomplete,
    VideoOpenFailure,
    VideoTimestampsJump,
)
from app.pipeline import video
from app.pipeline.damage import Damage, Seen
from app.pipeline.frames import ClosedScene, FrameSelector, frame_target
from app.pipeline.scan import (
    PREFETCH_DEPTH,
    FrameGrab,
    Grabbed,
    ScannedScene,
    list_scenes,
    prefetched,
)
from app.pipeline.scenes import (
    CutDetector,
    FadesDetector,
    KeyframeRule,
    QuickAdaptiveDetector,
    QuickContentDetector,
    ScanMode,
    SceneOptions,
    brightness,
)
from app.pipeline.types import Scene
from app.pipeline.video import DecodedFrame, VideoReader
from tests.fixtures.media import (
    COLOURS,
    MadeVideo,
    VideoFactory,
    damage_packets,
    decode_frame_number,
    make_coded_video,
    make_lavfi_video,
    nvdec_usable,
    raw_h264,
    retime_packets,
    shift_pes,
)


def scan(
    path: Path, options: SceneOptions | None = None, *, skip_nonref: bool = False
) -> list[ClosedScene[DecodedFrame]]:
    with VideoReader(path, skip_nonref=skip_nonref) as reader:
        cuts = CutDetector(options or SceneOptions(), reader.info.frame_rate)
        selector: FrameSelector[DecodedFrame] = FrameSelector(1.0)
        closed: list[ClosedScene[DecodedFrame] | None] = []
        last = 0.0
        for decoded in reader.frames():
            selector.push(decoded.time, decoded)
            for cut in cuts.feed(decoded.time, decoded.to_small_bgr(256)):
                closed.append(selector.cut(cut))
            last = decoded.time
        end = last + 1 / float(reader.info.frame_rate)
        closed += [selector.cut(cut) for cut in cuts.finish(end)]
        closed.append(selector.finish(end))
    return [c for c in closed if c is not None]


def nearest_colour(pixel: np.ndarray) -> str:
    return min(
        COLOURS,
        key=lambda name: sum((int(a) - b) ** 2 for a, b in zip(pixel, COLOURS[name], strict=True)),
    )


def test_cuts_are_found_to_the_frame(six_scene_video: MadeVideo) -> None:
    closed = scan(six_scene_video.path)
    starts = [c.scene.start for c in closed[1:]]
    assert len(starts) == len(six_scene_video.cut_times)
    for found, truth in zip(starts, six_scene_video.cut_times, strict=True):
        assert abs(found - truth) <= 2 / six_scene_video.fps
    assert closed[-1].scene.end == pytest.approx(six_scene_video.duration)


def test_grabbed_frame_is_the_one_on_screen_one_second_in(six_scene_video: MadeVideo) -> None:
    fps = six_scene_video.fps
    for item in scan(six_scene_video.path):
        pixels = np.asarray(item.frame.to_image())
        shown = decode_frame_number(pixels)
        # The decoder handed us exactly the frame presented at frame_time...
        assert shown == round(item.frame_time * fps)
        # ...and that time is 1 s into the scene (scenes here are all >= 2 s long).
        assert item.frame_time == pytest.approx(item.scene.start + 1.0, abs=0.5 / fps)


def test_short_scene_takes_its_middle_frame(coded_video: VideoFactory) -> None:
    made = coded_video([("red", 50), ("green", 20), ("blue", 50)])
    short = scan(made.path)[1]
    assert short.scene.duration == pytest.approx(0.8)
    pixels = np.asarray(short.frame.to_image())
    assert nearest_colour(pixels[-10, -10]) == "green"
    assert decode_frame_number(pixels) == 50 + 10


def pushed(selector: FrameSelector[int], first: int, last: int, fps: int = 24) -> None:
    """Frames ``first`` to ``last - 1`` of a video at ``fps``, each frame its number."""
    for number in range(first, last):
        selector.push(number / fps, number)


def test_a_short_scene_whose_cut_comes_late_keeps_its_middle_frame() -> None:
    # The scene 2-3.5 s ends by a cut the detectors report at 4.125 s, after 2 + 2 * 1 s: its
    # middle frame (2.75 s) was still held, for a cut up to ``lookback`` frames late.
    selector: FrameSelector[int] = FrameSelector(1.0)
    pushed(selector, 0, 50)
    selector.cut(2.0)
    pushed(selector, 50, 100)
    short = selector.cut(3.5)
    assert short is not None and short.exact
    assert (short.frame, short.frame_time) == (66, 2.75)


def test_a_cut_known_after_the_frame_was_let_go_says_the_frame_is_not_exact() -> None:
    selector: FrameSelector[int] = FrameSelector(1.0)
    pushed(selector, 0, 144)
    first = selector.cut(2.0)  # a fade's cut, known at 6 s: frames of 2-5.6 s are gone
    assert first is not None and first.exact and first.frame == 24
    pushed(selector, 144, 192)
    late = selector.cut(8.0)
    assert late is not None and late.scene.start == 2.0
    assert not late.exact and late.frame_time > 3.0
    pushed(selector, 192, 240)
    after = selector.cut(10.0)  # known at once: its frame at 9 s is there
    assert after is not None and after.exact and after.frame == 216


def test_a_selector_keeps_at_least_the_last_frame() -> None:
    with pytest.raises(ValueError, match="lookback must be >= 1 frame"):
        FrameSelector(1.0, lookback=0)


def test_a_cut_time_to_the_microsecond_takes_the_frame_at_its_target() -> None:
    # Cut times come back from the detectors to the microsecond: 26/24 s is 1.083333, a
    # third of a microsecond before frame 26, and its target 2.083333 as far before frame 50.
    selector: FrameSelector[int] = FrameSelector(1.0)
    pushed(selector, 0, 28)
    before = selector.cut(round(26 / 24, 6))
    assert before is not None and before.scene.end < 26 / 24
    pushed(selector, 28, 80)
    closed = selector.cut(round(78 / 24, 6))
    assert closed is not None and (closed.frame, closed.exact) == (50, True)


def selections(seed: int, late: int) -> list[tuple[ClosedScene[int], int, float]]:
    """A random video through a ``FrameSelector``: frames at a random rate (some gaps), cuts
    at random frames, each reported up to ``late`` frames after it and in order; each closed
    scene with the frame a selector that kept every frame would choose, and its target."""
    rng = random.Random(seed)
    fps = rng.choice([10, 23.976, 24, 25, 30, 60])
    times: list[float] = []
    time = 0.0
    for _ in range(rng.randrange(50, 400)):
        times.append(time)
        time += (1 + (rng.random() < 0.02) * rng.randrange(1, 40)) / fps
    cut_frames = sorted(rng.sample(range(1, len(times)), rng.randrange(0, len(times) // 10)))
    reports: dict[int, list[float]] = {}
    due = 0
    for frame in cut_frames:
        due = max(due, frame + rng.randrange(0, late + 1))
        reports.setdefault(min(due, len(times) - 1), []).append(round(times[frame], 6))
    offset = rng.choice([0.0, 0.5, 1.0, 2.0])
    selector: FrameSelector[int] = FrameSelector(offset, spread=rng.choice([1, 3]))
    closed = []
    for number, time in enumerate(times):
        selector.push(time, number)
        closed += [selector.cut(cut) for cut in reports.get(number, [])]
    closed.append(selector.finish(times[-1] + 1 / fps))

    def right(scene: ClosedScene[int]) -> tuple[ClosedScene[int], int, float]:
        start, end = scene.scene.start, scene.scene.end
        target = frame_target(start, end, offset)
        inside = [n for n, t in enumerate(times) if start - 1e-6 <= t < end - 1e-6]
        before = [n for n in inside if times[n] <= target + 1e-6]
        return scene, before[-1] if before else inside[0], target

    return [right(scene) for scene in closed if scene is not None]


def test_a_frame_is_said_exact_when_it_is_the_one_on_screen_at_the_target() -> None:
    inexact = 0
    for seed in range(200):
        for scene, right, target in selections(seed, late=100):
            assert not scene.exact or scene.frame == right, (seed, scene.scene)
            # Not exact only when unsure: a right frame at or before its target is known so.
            if scene.frame == right and scene.frame_time <= target + 1e-6:
                assert scene.exact, (seed, scene.scene)
            inexact += not scene.exact
    assert inexact > 0  # cuts this late do lose frames


def test_cuts_reported_within_the_lookback_give_exact_frames() -> None:
    for seed in range(100):
        for scene, right, _ in selections(seed, late=7):
            assert scene.exact and scene.frame == right, (seed, scene.scene)


def test_video_without_cut_is_one_scene(coded_video: VideoFactory) -> None:
    made = coded_video([("blue", 60)])
    [only] = scan(made.path)
    assert (only.scene.start, only.scene.end) == (0.0, pytest.approx(2.4))
    assert decode_frame_number(np.asarray(only.frame.to_image())) == 25


# x264 with three B-frames in a pyramid: the middle one is a reference, the other two are
# not, so a reader skipping non-reference frames gets every other frame.
_PYRAMID = ("-bf", "3")
# Eight B-frames in a row, none a reference: gaps of nine frames.
_LONG_B_RUNS = ("-bf", "8", "-b-pyramid", "none")


def test_skipping_nonref_frames_keeps_cuts_and_frames_exact(coded_video: VideoFactory) -> None:
    scenes = [("red", 60), ("green", 47), ("blue", 71), ("yellow", 55), ("magenta", 66)]
    made = coded_video(scenes, extra_args=_PYRAMID)
    with VideoReader(made.path, skip_nonref=True) as reader:
        decoded = list(reader.frames())
    # Fewer frames decoded, and each is exactly the frame shown at its time.
    assert len(decoded) < 0.6 * made.frame_count
    for frame in decoded[::7]:
        assert decode_frame_number(np.asarray(frame.to_image())) == round(frame.time * made.fps)
    assert max(b.time - a.time for a, b in itertools.pairwise(decoded)) <= 2 / made.fps + 1e-6

    closed = scan(made.path, skip_nonref=True)
    starts = [c.scene.start for c in closed[1:]]
    assert len(starts) == len(made.cut_times)
    for found, truth in zip(starts, made.cut_times, strict=True):
        assert abs(found - truth) <= 2 / made.fps
    for item in closed:
        shown = decode_frame_number(np.asarray(item.frame.to_image()))
        assert shown == round(item.frame_time * made.fps)
        assert abs(item.frame_time - (item.scene.start + 1.0)) <= 2 / made.fps


def test_long_runs_of_nonref_frames_switch_to_decoding_every_frame(
    coded_video: VideoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    made = coded_video([("red", 100), ("blue", 100)], extra_args=_LONG_B_RUNS)
    with caplog.at_level("INFO"), VideoReader(made.path, skip_nonref=True) as reader:
        times = [round(frame.time * made.fps) for frame in reader.frames()]
    # After the first gap of nine frames the reader decodes every frame, once the few
    # packets already inside the decoder (skipped before the switch) are out.
    switch = times[next(i for i, (a, b) in enumerate(itertools.pairwise(times)) if b - a > 3) + 1]
    missing = sorted(set(range(switch, made.frame_count)) - set(times))
    assert times[-1] == made.frame_count - 1
    assert all(frame < switch + 9 for frame in missing)
    assert "decoding every frame from here" in caplog.text


def test_fade_through_black_is_a_cut(tmp_path: Path) -> None:
    made = make_lavfi_video(
        tmp_path / "fade.mp4",
        # Red and blue have the same mean level, so the dark run is centred on the cut.
        [("red", 3), ("blue", 3), ("green", 3)],
        size=(320, 240),
        fade_to_black=[0],
    )
    closed = scan(made.path)
    assert len(closed) == 3
    # The cut lands where the picture comes back, within two frames of the scene change.
    assert abs(closed[1].scene.start - made.cut_times[0]) <= 2 / made.fps
    assert nearest_colour(np.asarray(closed[1].frame.to_image())[120, 160]) == "blue"


def test_rotation_metadata_is_applied(coded_video: VideoFactory, tmp_path: Path) -> None:
    made = coded_video([("red", 30)], size=(320, 240))
    rotated = tmp_path / "rotated.mp4"
    import subprocess

    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(made.path), "-c", "copy",
         "-metadata:s:v:0", "rotate=90", str(rotated)],
        check=True,
    )  # fmt: skip
    [only] = scan(rotated)
    assert only.frame.to_image().size == (240, 320)


@pytest.mark.parametrize(
    ("size", "sar", "shown"),
    [
        ((720, 576), "64/45", (1024, 576)),
        ((720, 480), "8/9", (640, 480)),
        ((320, 240), "1", None),
        # 16:9 stored as 854x480 says 1280:1281: square enough, not resampled.
        ((854, 480), "1280/1281", None),
    ],
)
def test_anamorphic_frames_are_shown_with_square_pixels(
    tmp_path: Path, size: tuple[int, int], sar: str, shown: tuple[int, int] | None
) -> None:
    # A widescreen PAL DVD (720x576 shown 16:9), a 4:3 NTSC one (720x480 shown 4:3), square.
    # A frame that is not stretched is the decoder's own, not resampled.
    path = tmp_path / "anamorphic.mp4"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi",
         "-i", f"testsrc=s={size[0]}x{size[1]}:d=0.2:r=25", "-vf", f"setsar=sar={sar}:max=10000",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    with VideoReader(path) as reader:
        first = next(reader.frames())
        if shown is None:
            shown = size
            pixels = first.frame.to_ndarray(format="rgb24")
            assert np.array_equal(np.asarray(first.to_image()), pixels)
        assert first.to_image().size == shown
        half = first.to_image(max_side=shown[0] // 2).size
        assert half == (shown[0] // 2, round(shown[1] / 2))
        assert first.still(max_side=shown[0] // 2).to_image().size == half
        # The detectors see the stored pixels, scaled as before.
        assert first.to_small_bgr(160).shape == (round(160 * size[1] / size[0]), 160, 3)


def test_a_reader_opened_aside_shows_frames_as_the_one_it_is_beside(tmp_path: Path) -> None:
    # MPEG-TS that says its 2:1 pixels only in the H.264 stream, from 1.48 s on: a reader
    # opened aside does not decode a frame to learn what the stream says; it takes it over.
    coded = tmp_path / "coded.mp4"
    path = tmp_path / "anamorphic.ts"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc2=s=160x120:d=2:r=25", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         str(coded)],
        check=True,
    )  # fmt: skip
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(coded), "-c", "copy",
         "-bsf:v", "h264_metadata=sample_aspect_ratio=2/1", str(path)],
        check=True,
    )  # fmt: skip
    with VideoReader(path) as reader:
        shown = [(f.time, f.to_image().size, f.to_small_bgr(80)) for f in reader.frames_from(1.0)]
        aside = reader.aside()
        assert aside.info == reader.info
        # Two B-frames' reordering, as probed: a decoder that starts with fewer drops a frame
        # of a stream that does not say how many it needs.
        probed = reader._stream.codec_context.reorder_depth
        assert probed == 2
        assert aside._stream.codec_context.reorder_depth == probed
        container, stream = reader._open_again()
        with container:
            assert stream.codec_context.reorder_depth == probed
        again = [(f.time, f.to_image().size, f.to_small_bgr(80)) for f in aside.frames_from(1.0)]
    assert [(time, size) for time, size, _ in again] == [(time, size) for time, size, _ in shown]
    assert shown[0][:2] == (0.0, (320, 120))
    assert all(np.array_equal(a, b) for (*_, a), (*_, b) in zip(again, shown, strict=True))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a video at all\n" * 50, "not a readable video"),
        (b"", "not a readable video"),
    ],
)
def test_non_video_files_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "fake.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoOpenFailure, match=message):
        VideoReader(path)


def test_audio_only_file_is_refused(tmp_path: Path) -> None:
    import subprocess

    path = tmp_path / "audio.m4a"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=d=1", str(path)],
        check=True,
    )
    with pytest.raises(VideoOpenFailure, match="no video stream"):
        VideoReader(path)


def _picture(path: Path) -> Path:
    """A one-frame PNG, the kind of picture files carry as cover art."""
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=s=160x120:d=1",
         "-frames:v", "1", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.mark.parametrize("scan_mode", list(ScanMode))
def test_the_film_is_scanned_not_a_still_picture_stored_before_it(
    six_scene_video: MadeVideo, tmp_path: Path, scan_mode: ScanMode
) -> None:
    # A Matroska file whose first video track is a one-frame picture: the film comes second.
    path = tmp_path / "picture-first.mkv"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(_picture(tmp_path / "cover.png")),
         "-i", str(six_scene_video.path), "-map", "0", "-map", "1:v", "-c", "copy", str(path)],
        check=True,
    )  # fmt: skip
    options = SceneOptions(scan=scan_mode)
    film = [found.scene for found in list_scenes(six_scene_video.path, options, 1.0)]
    assert len(film) == 6
    assert [found.scene for found in list_scenes(path, options, 1.0)] == film


@pytest.fixture(scope="module", params=[250, 12], ids=["x264-groups", "half-second-groups"])
def unindexed(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> tuple[Path, Path]:
    """An H.264 video with B-frames (an MP4, indexed) and its copy in MPEG-TS (no index):
    keyframes where x264 put them, at most 10 s apart, or every half second (a seek made
    from a second or more back passes several)."""
    directory = tmp_path_factory.mktemp("unindexed")
    scenes = [("red", 75), ("green", 75), ("blue", 75), ("yellow", 75), ("cyan", 60)]
    # veryfast: ultrafast has no lookahead, so x264 puts no keyframe where it sees a change.
    made = make_coded_video(
        directory / "indexed.mp4",
        scenes,
        gop=request.param,
        scenecut=True,
        grain=4,
        extra_args=["-preset", "veryfast"],
    )
    copy = directory / "copy.ts"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(made.path), "-c", "copy", str(copy)],
        check=True,
    )
    return made.path, copy


TIMES = (0.0, 1.0, 2.0, 3.9, 4.0, 5.5, 6.5, 8.5, 11.0, 13.5, 14.0)


def test_a_file_without_an_index_is_decoded_from_the_keyframe_before_each_time(
    unindexed: tuple[Path, Path],
) -> None:
    # FFmpeg's seek in MPEG-TS searches by timestamps and lands a packet past the keyframe:
    # decoding started a group late, or found no frame after the last keyframe.
    def read(path: Path) -> list[tuple[float | None, list[float]]]:
        with VideoReader(path) as reader:
            return [
                (
                    None if (key := reader.keyframe_before(time)) is None else round(key, 6),
                    [round(f.time, 6) for f in reader.frames_between(time, time + 0.3)],
                )
                for time in TIMES
            ]

    indexed, copy = unindexed
    expected = read(indexed)
    assert len({key for key, _ in expected}) >= 6  # the times fall in many groups
    keys = [key for key, _ in expected]
    assert all(key is not None and key <= time for key, time in zip(keys, TIMES, strict=True))
    assert all(len(times) >= 7 for _, times in expected)
    assert read(copy) == expected


def test_a_recording_that_begins_mid_group_has_no_keyframe_before_its_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A TV recording: its clock hours in (timestamps from 30000 s), its first bytes in the
    # middle of a group. Before its first keyframe there is none to seek to, and a seek
    # there says so at once (it tried every step back to 64 s, then warned).
    whole = tmp_path / "whole.ts"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=d=6:r=25:s=160x120",
         "-c:v", "libx264", "-g", "50", "-output_ts_offset", "30000", str(whole)],
        check=True,
    )  # fmt: skip
    data = whole.read_bytes()
    path = tmp_path / "recording.ts"
    path.write_bytes(data[len(data) // 6 // 188 * 188 :])  # whole 188-byte TS packets
    with VideoReader(path) as reader:
        first = next(reader.frames()).time
        assert first > 0.2  # the frames before the first keyframe cannot be decoded
        with caplog.at_level(logging.WARNING, logger="app.pipeline.video"):
            assert reader.keyframe_before(first / 2) is None
            assert reader.keyframe_before(first + 0.1) == pytest.approx(first)
        assert "no keyframe found" not in caplog.text


@pytest.mark.parametrize(
    "options",
    [
        SceneOptions(scan=ScanMode.FULL),
        # Its stretches and frames decoded from the keyframes, however much it decodes.
        SceneOptions(scan=ScanMode.KEYFRAMES, keyframes=KeyframeRule(most_refined=1.0)),
        SceneOptions(workers=2, chunk_length=3.0),
    ],
    ids=["full", "keyframes", "chunks"],
)
def test_a_file_without_an_index_gives_the_scenes_and_frames_of_an_indexed_copy(
    unindexed: tuple[Path, Path], options: SceneOptions
) -> None:
    def scenes(path: Path) -> list[tuple[float, ...]]:
        # To the microsecond: the two containers' time bases differ.
        return [
            tuple(round(t, 6) for t in (found.scene.start, found.scene.end, found.frame_time or -1))
            for found in list_scenes(path, options, 1.0)
        ]

    indexed, copy = unindexed
    expected = scenes(indexed)
    assert len(expected) == 5
    assert scenes(copy) == expected


def test_an_avi_file_with_b_frames_has_the_films_frame_rate_and_seeks_near_its_start(
    coded_video: VideoFactory, tmp_path: Path
) -> None:
    # AVI has no presentation times: FFmpeg stores B-frames with empty packets beside them,
    # and the average rate counts those (50 for 25 fps).
    made = coded_video([("red", 30), ("blue", 30)], extra_args=["-preset", "veryfast"])
    avi = tmp_path / "copy.avi"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(made.path), "-c", "copy", str(avi)],
        check=True,
    )
    with av.open(str(avi)) as container:
        assert container.streams.video[0].average_rate == 50
    with VideoReader(avi) as reader:
        assert reader.info.frame_rate == 25
        # Its timestamps start at zero, below which it refuses a seek: the first second is
        # read from the start, however far back a seek is tried.
        for time in (0.0, 0.3, 0.9):
            first = next(reader.frames_from(time))
            assert first.time <= time + 1 / 25
    # Its B-frames come out with times a frame early (those of decoding), each before the
    # frame shown ahead of it: every frame is still handed out, none taken for out of order.
    with VideoReader(avi) as reader:
        times = [decoded.time for decoded in reader.frames()]
    assert len(times) == 60
    assert any(later < earlier for earlier, later in itertools.pairwise(times))


def _recording(path: Path, *parts: str, seconds: float = 2) -> Path:
    """MPEG-TS recordings of lavfi sources (``seconds`` each, x264) joined byte for byte, as
    ``cat`` joins them: each restarts its timestamps."""
    with path.open("wb") as joined:
        for index, source in enumerate(parts):
            part = path.with_name(f"{path.stem}-{index}.ts")
            subprocess.run(
                ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                 f"{source}:d={seconds}:r=25",
                 "-c:v", "libx264", "-pix_fmt", "yuv420p", str(part)],
                check=True,
            )  # fmt: skip
            joined.write(part.read_bytes())
    return path


@pytest.mark.parametrize("scan_mode", list(ScanMode))
def test_a_recording_whose_picture_size_changes_part_way_is_scanned_through(
    tmp_path: Path, scan_mode: ScanMode
) -> None:
    # An SD advert (4:3) between two parts of an HD programme (16:9), remuxed by ffmpeg with
    # continuous timestamps: the detectors see every frame at the programme's size.
    joined = _recording(
        tmp_path / "joined.ts", "testsrc=s=320x180", "rgbtestsrc=s=240x180", "testsrc2=s=320x180"
    )
    path = tmp_path / "recording.mkv"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(joined), "-c", "copy", str(path)],
        check=True,
    )
    found = list(list_scenes(path, SceneOptions(scan=scan_mode), 1.0))
    assert [found.scene.start for found in found] == pytest.approx([0.0, 2.0, 4.0], abs=0.1)
    assert found[-1].scene.end == pytest.approx(6.0, abs=0.1)


SCANS = pytest.mark.parametrize(
    "options",
    [
        SceneOptions(scan=ScanMode.FULL),
        SceneOptions(scan=ScanMode.KEYFRAMES),
        SceneOptions(workers=2, chunk_length=5.0),
    ],
    ids=["full", "keyframes", "chunks"],
)


def _scenes(path: Path, options: SceneOptions) -> list[tuple[float, float, float]]:
    return [(s.scene.start, s.scene.end, s.frame_time) for s in list_scenes(path, options, 1.0)]


@SCANS
def test_recordings_joined_end_to_end_are_refused_with_the_way_to_fix_them(
    tmp_path: Path, options: SceneOptions
) -> None:
    # Each part's timestamps start again: its frames cannot be placed after the first's.
    # Before, the scan ended with the first part, as if the rest were not there.
    path = _recording(
        tmp_path / "joined.ts", "testsrc=s=320x180", "rgbtestsrc=s=320x180", seconds=10
    )
    jump = r"jump back from (9\.\d\d|10\.00) s to -?0\.0\d s.*ffmpeg -i"
    with pytest.raises(VideoTimestampsJump, match=jump):
        list(list_scenes(path, options, 1.0))


@SCANS
def test_damaged_packets_are_skipped_as_ffmpeg_skips_them(
    coded_video: VideoFactory,
    tmp_path: Path,
    options: SceneOptions,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Before, the first damaged packet ended every scan: "the video is incomplete ...
    # decoding stopped at 5.9 s of 12.0 s", where the ffmpeg command decodes on past it.
    made = coded_video([("red", 100), ("blue", 100), ("green", 100)], scenecut=True, grain=4)
    path = tmp_path / "damaged.mp4"
    assert damage_packets(made.path, path, "video", 5.9, 6.1) == pytest.approx(
        [5.92, 5.96, 6.0, 6.04, 6.08]
    )
    assert _scenes(path, options) == _scenes(made.path, options)
    damaged = [r.getMessage() for r in caplog.records if "damaged video packet" in r.message]
    # A decoder on several threads tells of a damaged packet a few packets late. The chunks'
    # workers log through the scan's process, each packet once though two chunks decode it;
    # before, their lines went bare to their stderr, without the service's log format.
    assert damaged
    assert all(re.search(r"near (5\.9\d|6\.[01]\d) s was skipped", line) for line in damaged)
    assert len(damaged) == len(set(damaged))
    assert "damaged" not in capfd.readouterr().err


def test_damage_that_several_chunks_met_is_listed_once_for_the_video(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # What each chunk's worker met comes back to the scan's reader (``chunks.py``): chunks
    # overlap, and five packets are listed for the whole video, not five a chunk.
    film = Damage("film.ts", "video")
    for times in [(1.0, 2.0, 3.0), (3.0, 4.0), (4.0, 5.0, 6.0, 7.0)]:
        film.add(Seen({time: "Invalid data found" for time in times}, late=(9.0, 7.5)))
    assert [record.getMessage() for record in caplog.records] == [
        *[
            f"film.ts: a damaged video packet near {time} s was skipped (Invalid data found); "
            "the picture may break up there"
            for time in ["1.00", "2.00", "3.00"]
        ],
        "film.ts: a frame shown at 7.50 s came out after one shown at 9.00 s (timestamps out "
        "of order, as past a damaged packet); frames out of order are dropped",
        *[
            f"film.ts: a damaged video packet near {time} s was skipped (Invalid data found); "
            "the picture may break up there"
            for time in ["4.00", "5.00"]
        ],
        "film.ts: more damaged video packets were skipped; not listed",
    ]
    assert film.times == {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0}
    assert film.seen() == Seen(dict.fromkeys(film.times, "Invalid data found"), (9.0, 7.5))


def test_the_gap_damaged_packets_leave_keeps_non_reference_frames_skipped(
    coded_video: VideoFactory, tmp_path: Path
) -> None:
    # The frames they lost looked like a long run of skipped ones: every frame of the rest
    # of the film was decoded (1296 of Big Buck Bunny's 1440 instead of 998).
    made = coded_video(
        [("red", 100), ("blue", 100)], scenecut=True, grain=4, extra_args=["-preset", "veryfast"]
    )
    path = tmp_path / "damaged.mp4"
    damage_packets(made.path, path, "video", 3.0, 3.1)
    with VideoReader(made.path, skip_nonref=True) as reader:
        clean = [decoded.time for decoded in reader.frames()]
    with VideoReader(path, skip_nonref=True) as reader:
        damaged = [decoded.time for decoded in reader.frames()]
        assert reader.skipping_stopped_at is None
    assert len(clean) < 150  # a third and more skipped
    assert set(damaged) <= set(clean)
    assert len(damaged) >= len(clean) - 3


def test_a_gap_in_a_variable_frame_rate_video_is_no_run_of_skipped_frames(
    coded_video: VideoFactory,
) -> None:
    # Frames 20 to 30 left out, as a variable frame rate encode leaves out a still
    # picture's repeats: the reader took the gap for a long run of skipped non-reference
    # frames and decoded every frame from there on (the keyframe scan's stretches twice).
    made = coded_video(
        [("red", 50), ("blue", 50), ("green", 50)],
        grain=6,
        gop=50,
        scenecut=True,
        extra_args=(
            "-x264-params", "scenecut=0:bframes=2:b-adapt=0:b-pyramid=none",
            "-vf", "select='not(between(n,20,30))'", "-fps_mode", "vfr",
        ),
    )  # fmt: skip
    with VideoReader(made.path) as reader:
        every = [decoded.time for decoded in reader.frames()]
    with VideoReader(made.path, skip_nonref=True) as reader:
        skipping = [decoded.time for decoded in reader.frames()]
        assert reader.skipping_stopped_at is None
    assert min(every, key=lambda time: abs(time - 0.76)) == pytest.approx(0.76)
    assert not any(0.8 < time < 1.2 for time in every)
    assert set(skipping) < set(every)
    assert len(skipping) < 0.7 * len(every)
    # Never more than two frames skipped in a row.
    assert all(every.index(b) - every.index(a) <= 3 for a, b in itertools.pairwise(skipping))


def test_damage_does_not_hide_a_long_run_of_non_reference_frames(
    coded_video: VideoFactory, tmp_path: Path
) -> None:
    # Three non-reference B-frames between reference frames: skipping them leaves gaps of
    # four frames, more than MAX_SKIP_GAP, so every frame is decoded from the first. A
    # damaged packet before it excused every gap within a second of it.
    made = coded_video(
        [("red", 50), ("blue", 50)],
        scenecut=True,
        grain=4,
        extra_args=["-bf", "3", "-x264-params", "b-pyramid=none:b-adapt=0"],
    )
    path = tmp_path / "damaged.mp4"
    assert damage_packets(made.path, path, "video", 0.1, 0.15)
    with VideoReader(path, skip_nonref=True) as reader:
        list(reader.frames())
        assert reader.skipping_stopped_at is not None
        assert reader.skipping_stopped_at < 0.5


@SCANS
@pytest.mark.parametrize(
    "later",
    [{6.0: 15.0}, {6.0: 1.2, 6.04: 1.2}],
    ids=["one-far-ahead", "two-ahead"],
)
def test_frames_out_of_order_are_dropped_not_taken_for_a_jump(
    coded_video: VideoFactory,
    tmp_path: Path,
    options: SceneOptions,
    later: dict[float, float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Frames shown later than they should be (a damaged header's timestamp) put frames
    # decoded after them out of order: one far ahead is dropped itself (the next frame
    # follows on from the one before it); two ahead drop the frames they overtook. Before,
    # each was refused as recordings joined end to end.
    made = coded_video([("red", 100), ("blue", 100), ("green", 100)], scenecut=True, grain=4)
    path = tmp_path / "retimed.mkv"
    retime_packets(made.path, path, later)
    assert _scenes(path, options) == _scenes(made.path, options)
    if not options.workers:
        assert "came out after one shown at" in caplog.text


@pytest.mark.parametrize("scan_mode", list(ScanMode))
def test_a_raw_stream_without_timestamps_is_placed_by_counting_every_frame(
    coded_video: VideoFactory, tmp_path: Path, scan_mode: ScanMode
) -> None:
    # An H.264 elementary stream (.h264): no container, no timestamps. Before, its
    # non-reference frames were skipped and the count gave every frame after them an
    # earlier time (60 s of Big Buck Bunny ended at 41.7 s, its cuts moved), the keyframe
    # scan said "the video stream holds no keyframe", and a seek failed (EPERM).
    # Fades through black: their cuts come late, and the frames of the scenes before them
    # are decoded again (a seek, which in a raw stream decodes again from its start).
    made = coded_video(
        [("red", 50), ("black", 100), ("green", 30), ("black", 100), ("blue", 100)],
        gop=50,
        extra_args=["-preset", "veryfast"],  # with B-frames
    )
    raw = raw_h264(made.path, tmp_path / "raw.h264")
    with VideoReader(raw) as reader:
        assert not reader.timed
        assert reader.keyframe_before(3.0) == 0.0
        assert [f.time for f in reader.frames_between(2.0, 2.1)] == pytest.approx([2.0, 2.04, 2.08])
    # The same as the MP4 with every frame decoded (with the default skipping, the second
    # scene's frame is the reference frame before its target, 2.96 s, not 3.00 s).
    expected = _scenes(made.path, SceneOptions(scan=ScanMode.FULL, skip_nonref_frames=False))
    got = _scenes(raw, SceneOptions(scan=scan_mode))
    assert [t for scene in got for t in scene] == pytest.approx(
        [t for scene in expected for t in scene], abs=1e-6
    )
    assert len(got) == 7


@pytest.mark.parametrize(
    "options",
    [
        SceneOptions(scan=ScanMode.FULL),
        # The keyframe pass to the end, whatever it decodes.
        SceneOptions(scan=ScanMode.KEYFRAMES, keyframes=KeyframeRule(most_refined=1.0)),
        SceneOptions(workers=2, chunk_length=5.0),
    ],
    ids=["full", "keyframes", "chunks"],
)
@pytest.mark.parametrize("where", ["within", "near-the-end"])
def test_one_packet_header_far_off_in_a_recording_costs_nothing(
    coded_video: VideoFactory, tmp_path: Path, options: SceneOptions, where: str
) -> None:
    # One PES header of an MPEG-TS recording with timestamps 5 s ahead: the keyframe pass
    # took every packet after it for a jump back and refused the file, where the full scan
    # dropped the one frame. Near the end, FFmpeg takes the recording for that much longer
    # (it estimates a file without an index's duration from its timestamps), and every
    # scan refused the file as cut short: "decoding stopped at 12.0 s of 16.8 s".
    made = coded_video([("red", 100), ("blue", 100), ("green", 100)], scenecut=True, grain=4)
    recording = tmp_path / "recording.ts"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(made.path), "-c", "copy", str(recording)],
        check=True,
    )
    odd = tmp_path / "odd.ts"
    shift_pes(recording, odd, 50 if where == "within" else 296, 5.0)
    if where == "near-the-end":
        with VideoReader(odd) as reader:
            assert reader.info.duration == pytest.approx(16.8, abs=0.2)
    assert _scenes(odd, options) == _scenes(recording, options)


@SCANS
def test_a_film_whose_data_is_lost_past_the_middle_is_still_incomplete(
    coded_video: VideoFactory, tmp_path: Path, options: SceneOptions
) -> None:
    # Its index intact, every packet from 6 s on zeroed (a download into a file made at
    # full size, a bad disk). A first version let a packet read near the declared end count
    # as an odd timestamp (``cut_short``) though it decoded to nothing: the film passed as
    # 6 s long.
    made = coded_video([("red", 100), ("blue", 100), ("green", 100)], scenecut=True, grain=4)
    holed = tmp_path / "holed.mp4"
    assert len(damage_packets(made.path, holed, "video", 6.0, 100.0)) == 150
    with pytest.raises(VideoIncomplete, match=r"decoding stopped at [56]\.\d s of 12\.0 s"):
        _scenes(holed, options)


@SCANS
def test_a_recording_whose_clock_wraps_round_early_on_is_scanned_as_one_that_does_not(
    coded_video: VideoFactory, tmp_path: Path, options: SceneOptions
) -> None:
    # An MPEG-TS clock (33 bits at 90 kHz) wraps round every 26.5 hours; where it is due to
    # within the first minute, FFmpeg counts the time before the wrap as negative. A seek to
    # the first timestamp landed a packet past the first keyframe (a search by decoding
    # times), where decoding cannot start: the keyframe scan took the first scene's frame
    # from the next group, and the chunks found a false cut there. (With B-frames: the
    # first keyframe is decoded before it is shown.)
    made = coded_video(
        [("red", 100), ("blue", 100), ("green", 100)],
        scenecut=True,
        grain=4,
        extra_args=["-preset", "veryfast"],
    )
    recordings = {}
    # 95430 s: 13.7 s before the clock wraps round (at 2**33 / 90 kHz, 95443.7 s).
    for name, offset in [("plain", 0), ("wrapped", 95430)]:
        recordings[name] = tmp_path / f"{name}.ts"
        subprocess.run(
            ["ffmpeg", "-y", "-loglevel", "error", "-i", str(made.path), "-c", "copy",
             "-output_ts_offset", str(offset), str(recordings[name])],
            check=True,
        )  # fmt: skip
    with av.open(str(recordings["wrapped"])) as container:
        assert container.streams.video[0].start_time < 0
    wrapped, plain = (_scenes(recordings[name], options) for name in ["wrapped", "plain"])
    assert [t for scene in wrapped for t in scene] == pytest.approx(
        [t for scene in plain for t in scene], abs=1e-6
    )


def test_empty_packets_repeat_a_picture_and_are_no_damage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # libtheora writes an empty packet for each frame like the one before: 45 of them in
    # 2 s of one colour, each logged as "a damaged video packet ... was skipped".
    path = tmp_path / "still.ogv"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "color=red:s=160x120:d=2",
         "-f", "lavfi", "-i", "testsrc=s=160x120:d=2", "-filter_complex", "[0][1]concat=n=2",
         "-c:v", "libtheora", "-q:v", "7", str(path)],
        check=True,
    )  # fmt: skip
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert sum(1 for p in container.demux(stream) if not p.size and p.pts is not None) > 40
    scenes = _scenes(path, SceneOptions())
    assert [start for start, _, _ in scenes] == pytest.approx([0.0, 2.0], abs=0.05)
    assert "damaged" not in caplog.text


def test_a_video_whose_every_packet_is_damaged_says_so(
    six_scene_video: MadeVideo, tmp_path: Path
) -> None:
    path = tmp_path / "damaged.mp4"
    damage_packets(six_scene_video.path, path, "video", 0.0, 60.0)
    with (
        pytest.raises(
            VideoOpenFailure, match="no frame could be decoded, every one met was damaged"
        ),
        VideoReader(path) as reader,
    ):
        list(reader.frames())


@SCANS
def test_the_frames_of_a_short_jump_back_are_dropped_not_handed_out_early(
    tmp_path: Path, options: SceneOptions
) -> None:
    # Two recordings joined with cat, the second's clock 1.1 s behind where the first
    # ended: fewer frames than make a jump (``_JUMP_FRAMES``). Its frames under a second
    # behind were handed out as if in order, once the first two were dropped as late: the
    # cut at the join came 1 s early. They are dropped until they catch up.
    path = tmp_path / "joined.ts"
    with path.open("wb") as joined:
        for index, (source, offset) in enumerate([("testsrc", 0.0), ("rgbtestsrc", 6.9)]):
            part = tmp_path / f"part-{index}.ts"
            subprocess.run(
                ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                 f"{source}=s=320x180:d=8:r=25", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                 "-output_ts_offset", str(offset), str(part)],
                check=True,
            )  # fmt: skip
            joined.write(part.read_bytes())
    scenes = _scenes(path, options)
    assert [start for start, _, _ in scenes] == pytest.approx([0.0, 8.0], abs=0.05)
    assert scenes[-1][1] == pytest.approx(14.9, abs=0.1)  # its frames after that kept


def test_audio_with_cover_art_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "song.m4a"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=d=1",
         "-i", str(_picture(tmp_path / "cover.png")), "-map", "0", "-map", "1", "-c:a", "aac",
         "-c:v", "png", "-disposition:v", "attached_pic", str(path)],
        check=True,
    )  # fmt: skip
    with av.open(str(path)) as container:  # the picture is a video stream of the file
        assert container.streams.video
    with pytest.raises(VideoOpenFailure, match="only cover art"):
        VideoReader(path)


def test_truncated_file_is_refused_or_cut_short(six_scene_video: MadeVideo, tmp_path: Path) -> None:
    data = six_scene_video.path.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 3])
    # The moov atom sits at the end of ffmpeg's default mp4 output: a cut file has no index.
    with pytest.raises(VideoOpenFailure), VideoReader(path) as reader:
        list(reader.frames())


@pytest.mark.skipif(nvdec_usable(), reason="this machine has a GPU that FFmpeg can decode on")
def test_decoding_on_a_gpu_that_is_not_there_says_so_before_reading(
    six_scene_video: MadeVideo,
) -> None:
    with pytest.raises(DecoderUnavailable, match=r"'cuda:0'.*--decode-device cpu"):
        VideoReader(six_scene_video.path, decode_device="cuda:0")


def test_decode_devices_other_than_cpu_and_cuda_are_refused(six_scene_video: MadeVideo) -> None:
    with pytest.raises(ValueError, match="'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        VideoReader(six_scene_video.path, decode_device="gpu")


def _film_like_frames(count: int) -> list[np.ndarray]:
    """Small BGR frames that move, cut, flash and fade, with grain: every score path."""
    rng = np.random.default_rng(7)
    frames = []

    def new_shot() -> np.ndarray:
        coarse = rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)
        return cv2.resize(coarse, (256, 144), interpolation=cv2.INTER_LINEAR)

    shot = new_shot()
    for index in range(count):
        if index % 37 == 0:
            shot = new_shot()
        frame = np.roll(shot, index % 37, axis=1)
        if index % 53 == 20:
            frame = np.full_like(frame, 250)  # a flash
        grain = rng.integers(-6, 7, frame.shape)
        fade = 1.0 if index % 90 < 80 else (90 - index % 90) / 10
        frames.append(np.clip((frame + grain) * fade, 0, 255).astype(np.uint8))
    return frames


@pytest.mark.parametrize(
    ("quick", "library", "kwargs"),
    [
        (QuickAdaptiveDetector, AdaptiveDetector, {}),
        (QuickContentDetector, ContentDetector, {}),
        (QuickContentDetector, ContentDetector, {"threshold": 12.0}),
        # An edge weight: the library's own code.
        (
            QuickContentDetector,
            ContentDetector,
            {"weights": ContentDetector.Components(1, 1, 1, 1)},
        ),
    ],
    ids=["adaptive", "content", "content-low-threshold", "content-edges"],
)
def test_quick_detectors_score_every_frame_exactly_as_the_librarys(
    quick: type[ContentDetector], library: type[ContentDetector], kwargs: dict[str, object]
) -> None:
    ours, theirs = quick(**kwargs), library(**kwargs)
    cuts: tuple[list[int], list[int]] = ([], [])
    for index, frame in enumerate(_film_like_frames(300)):
        timecode = FrameTimecode(index, 25.0)
        for detector, found in zip((ours, theirs), cuts, strict=True):
            found += [cut.frame_num for cut in detector.process_frame(timecode, frame)]
        assert ours._frame_score == theirs._frame_score, index
    assert cuts[0] == cuts[1]
    assert len(cuts[0]) >= 5


def test_the_detectors_small_frames_are_the_same_scaled_on_one_thread_or_several(
    coded_video: VideoFactory,
) -> None:
    made = coded_video([("red", 20), ("blue", 20)], size=(1280, 720), grain=12)
    scaled = []
    for threads in (2, 8):  # one slice thread for the detectors' frames, and four
        with VideoReader(made.path, threads=threads) as reader:
            frames = list(reader.frames())
            assert {decoded.scale_threads for decoded in frames} == {video.scale_threads(threads)}
            scaled.append([decoded.to_small_bgr(333) for decoded in frames])
    one, several = scaled
    assert len(one) == len(several) >= 20
    assert all(np.array_equal(a, b) for a, b in zip(one, several, strict=True))
    assert video.scale_threads(2) == 1 and video.scale_threads(8) == 4


def test_brightness_is_numpys_mean_to_the_last_bit() -> None:
    rng = np.random.default_rng(3)
    frames = [
        *_film_like_frames(40),
        rng.integers(0, 256, (145, 257, 3), dtype=np.uint8),
        rng.integers(0, 256, (144, 300, 3), dtype=np.uint8)[:, 7:263],  # a view
        rng.integers(0, 256, (90, 160), dtype=np.uint8),  # one channel
        np.full((1080, 1920, 3), 255, dtype=np.uint8),
    ]
    for frame in frames:
        assert brightness(frame) == float(np.mean(frame))


def _fade_frames() -> list[np.ndarray]:
    """Shots that fade to black and back in, and one that dips to just above the threshold."""
    levels = [120] * 20 + list(range(120, -1, -12)) + [0] * 8 + list(range(0, 130, 13))
    levels += [140] * 20 + list(range(140, 11, -8)) + [13, 12, 12, 13] + [90] * 20
    grain = np.random.default_rng(5).integers(-3, 4, (len(levels), 36, 64, 3))
    return [
        np.clip(level + noise, 0, 255).astype(np.uint8)
        for level, noise in zip(levels, grain, strict=True)
    ]


def test_fades_detector_takes_each_frames_mean_from_opencv_and_cuts_where_the_library_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def cuts(detector: FadesDetector) -> list[int]:
        return [
            cut.frame_num
            for index, frame in enumerate(_fade_frames())
            for cut in detector.process_frame(FrameTimecode(index, 25.0), frame)
        ]

    library = FadesDetector(min_scene_len=5)
    library.stats_manager = None  # the library's own numpy.mean
    expected = cuts(library)
    assert len(expected) == 2

    def no_numpy_mean(*args: object, **kwargs: object) -> float:
        raise AssertionError("numpy.mean called: the frame's mean was not taken from OpenCV")

    # The library module's name for NumPy, not NumPy itself: other threads may use it.
    monkeypatch.setattr(threshold_detector, "numpy", SimpleNamespace(mean=no_numpy_mean))
    assert cuts(FadesDetector(min_scene_len=5)) == expected


@dataclass(frozen=True)
class _HeldGrab(FrameGrab):
    """The real grab, once ``release`` is set, noting the thread it ran on."""

    release: threading.Event = field(default_factory=threading.Event)
    threads: list[str] = field(default_factory=list)

    def __call__(self) -> Grabbed:
        self.threads.append(threading.current_thread().name)
        # Set by the test once prefetch has returned: a prefetch that decoded on the
        # caller's thread would fail here (after a minute) rather than hang.
        assert self.release.wait(timeout=60)
        return super().__call__()


def test_a_prefetched_frame_is_decoded_in_the_background_and_handed_over_when_asked(
    six_scene_video: MadeVideo,
) -> None:
    with VideoReader(six_scene_video.path) as reader:
        scene = Scene(index=0, start=2.0, end=4.0)
        grab = _HeldGrab(reader, scene, 1.0, skipping=False)
        found = ScannedScene(scene, grab=grab, reader=reader)
        found.prefetch()  # returns while the grab waits on another thread
        assert found.decoding
        grab.release.set()
        chosen = found.frame()
        assert chosen is not None
        assert chosen[0] == pytest.approx(3.0)
        assert found.frame() is chosen  # grabbed once
    assert len(grab.threads) == 1
    assert grab.threads[0].startswith("decode ")


def _blocked_and_kept(
    reader: VideoReader, release: threading.Event, kept: int
) -> list[ScannedScene]:
    """A scene whose grab waits for ``release``, then ``kept`` scenes whose frames the scan
    kept."""
    scene = Scene(index=0, start=0.0, end=1.0)
    grab = _HeldGrab(reader, scene, 0.5, skipping=False, release=release)
    first = ScannedScene(scene, grab=grab, reader=reader)
    frame = next(reader.frames())
    return [first] + [
        ScannedScene(Scene(index=i, start=float(i), end=i + 1.0), frame=(frame.time, frame))
        for i in range(1, kept + 1)
    ]


def test_prefetched_holds_a_scene_only_while_its_frame_is_decoding(
    six_scene_video: MadeVideo,
) -> None:
    release = threading.Event()
    with VideoReader(six_scene_video.path) as reader:
        scenes = _blocked_and_kept(reader, release, PREFETCH_DEPTH + 2)
        pulled: list[int] = []

        def source() -> Iterator[ScannedScene]:
            for found in scenes:
                pulled.append(found.scene.index)
                yield found

        out = prefetched(source(), lambda found: found)
        assert next(out) is scenes[0]
        # The first, still decoding, waited for PREFETCH_DEPTH more and no longer.
        assert pulled == list(range(PREFETCH_DEPTH + 1))
        assert scenes[0].decoding
        release.set()
        # The others, kept by the scan, are handed out as they come.
        assert next(out) is scenes[1]
        assert pulled == list(range(PREFETCH_DEPTH + 1))
        assert list(out) == scenes[2:]
        assert scenes[0].frame() is not None


def test_prefetched_hands_out_the_scenes_before_an_error_then_raises_it(
    six_scene_video: MadeVideo,
) -> None:
    release = threading.Event()
    with VideoReader(six_scene_video.path) as reader:
        scenes = _blocked_and_kept(reader, release, 1)

        def source() -> Iterator[ScannedScene]:
            yield from scenes
            raise VideoIncomplete("damaged at 2.0 s")

        handed: list[ScannedScene] = []
        with pytest.raises(VideoIncomplete, match="damaged"):
            for found in prefetched(source(), lambda found: found):
                handed.append(found)
        assert handed == scenes
        release.set()


@pytest.mark.parametrize(
    "base",
    [
        Fraction(1, 12288),
        Fraction(1, 90000),
        Fraction(1001, 30000),
        Fraction(1, 1000),
        Fraction(1, 2997),
    ],
)
def test_timestamps_in_seconds_are_those_of_fraction_arithmetic(base: Fraction) -> None:
    # The keyframe pass and the reader turn every packet's timestamp into seconds without
    # building a Fraction; the plan's times are compared with the frames' to the bit.
    generator = random.Random(7)
    ticks = [0, 1, -1, 2**31, 10**12, *(generator.randint(-(10**4), 10**12) for _ in range(20000))]
    assert [video.seconds(tick, base) for tick in ticks] == [float(tick * base) for tick in ticks]
