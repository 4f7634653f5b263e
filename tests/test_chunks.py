"""The full scan in chunks by worker processes (``app.pipeline.chunks``) against the full scan
in one process, on generated video: the same scenes, frames and errors."""

from __future__ import annotations

import csv
import io
import logging
import re
import struct
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli import main
from app.errors import VideoIncomplete, VideoTooLong
from app.models import CaptionRequest
from app.pipeline.chunks import (
    Chunk,
    ChunkResult,
    _keyed,
    _Merge,
    _warm_start,
    chunk_bounds,
    default_workers,
    warm_up,
)
from app.pipeline.describe import DescribeOptions, describe
from app.pipeline.frames import ClosedScene
from app.pipeline.scan import list_scenes, prefetched, scan_scenes
from app.pipeline.scenes import ScanMode, SceneOptions
from app.pipeline.types import Scene
from app.pipeline.video import THUMBNAIL_SIDE, StillFrame, VideoReader
from tests.fixtures.media import VideoFactory, decode_frame_number, with_audio_track
from tests.fixtures.models import ScriptedCaptioner

ONE = SceneOptions()


def chunked(length: float) -> SceneOptions:
    return SceneOptions(workers=2, chunk_length=length)


@dataclass(frozen=True)
class Row:
    start: float
    end: float
    time: float
    number: int
    """The frame number painted in the scene's frame."""
    spread: tuple[int, ...]
    """The frame numbers painted in its spread frames."""


def scan(path: Path, options: SceneOptions, spread: int = 1) -> list[Row]:
    rows: list[Row] = []
    with VideoReader(path, skip_nonref=options.skip_nonref_frames) as reader:
        scenes = scan_scenes(
            reader, options, 1.0, stop=threading.Event(), on_time=lambda _: None, spread=spread
        )
        # As describe() and list_scenes take them (``prefetched``).
        for found in prefetched(scenes, lambda item: item):
            chosen = found.frame()
            assert chosen is not None
            time, frame = chosen
            numbers = tuple(decode_frame_number(np.asarray(f.to_image())) for f in found.spread)
            number = decode_frame_number(np.asarray(frame.to_image()))
            rows.append(Row(found.scene.start, found.scene.end, time, number, numbers))
    return rows


def scan_logged(
    path: Path, options: SceneOptions, caplog: pytest.LogCaptureFixture, spread: int = 1
) -> list[Row]:
    """``scan``, checking that it ran in chunks."""
    with caplog.at_level(logging.INFO, logger="app.pipeline.chunks"):
        rows = scan(path, options, spread)
    assert "worker processes" in caplog.text
    caplog.clear()
    return rows


SCENES = [
    ("red", 60),
    ("green", 47),
    ("blue", 71),
    ("yellow", 55),
    ("magenta", 66),
    ("cyan", 80),
    ("white", 90),
    ("blue", 75),
    ("red", 120),
]


@pytest.mark.parametrize(
    "options",
    [SceneOptions(), SceneOptions(scan=ScanMode.KEYFRAMES), chunked(5.0)],
    ids=["one process", "keyframes", "chunks"],
)
def test_a_fades_cut_learned_late_still_gets_the_frame_one_second_in(
    coded_video: VideoFactory, options: SceneOptions, caplog: pytest.LogCaptureFixture
) -> None:
    # A fade's cut goes in the middle of the dark run (6 s) and is known only where the run
    # ends (9 s), when the frames of 6-7 s are long gone: the frame at 7 s is decoded again.
    made = coded_video([("red", 75), ("black", 150), ("blue", 75)])
    chunks = options.workers > 1
    rows = scan_logged(made.path, options, caplog) if chunks else scan(made.path, options)
    assert [(row.start, row.end) for row in rows] == [(0, 3), (3, 6), (6, 9), (9, 12)]
    assert [row.number for row in rows] == [25, 100, 175, 250]
    assert [row.time for row in rows] == pytest.approx([1, 4, 7, 10])


@pytest.mark.parametrize(("cores", "cpu", "nvdec"), [(2, 1, 1), (4, 1, 2), (16, 1, 8), (64, 1, 8)])
def test_workers_by_default_only_where_one_process_waits_on_copies_from_nvdec(
    cores: int, cpu: int, nvdec: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.pipeline.chunks.cores", lambda: cores)
    assert default_workers("cpu") == cpu
    assert default_workers("cuda") == default_workers("cuda:1") == nvdec


@pytest.mark.parametrize(
    "encoding",
    [{"scenecut": True, "extra_args": ("-preset", "medium")}, {"gop": 25}],
    ids=["x264-default", "fixed-gop"],
)
def test_chunks_find_the_scenes_frames_and_spread_frames_of_one_process(
    coded_video: VideoFactory, encoding: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    made = coded_video(SCENES, grain=6, **encoding)
    # Four chunks of 6.64 s: seams inside the scenes from 4.28 s, 11.96 s and 18.76 s.
    assert len(chunk_bounds(made.duration, 6.6)) == 5
    alone = scan(made.path, ONE, spread=3)
    assert len(alone) == len(SCENES)
    assert scan_logged(made.path, chunked(6.6), caplog, spread=3) == alone
    for row in alone:
        assert row.number == round(row.time * made.fps)
        assert len(row.spread) == 3


def test_seams_move_back_to_a_warm_up_after_a_keyframe(coded_video: VideoFactory) -> None:
    made = coded_video(SCENES, grain=6, gop=50)  # a keyframe every 2 s
    warm = warm_up(ONE)
    assert warm == pytest.approx(2.1)
    with VideoReader(made.path) as reader:
        assert reader.keyframe_before(7.9) == pytest.approx(6.0)
        keyed = _keyed(reader, [0.0, 10.0, 20.0, made.duration], warm)
    # From 10 s: the keyframe at 6 s is the one before 7.9 s, where the warm-up would start.
    assert keyed == pytest.approx([0.0, 8.101, 18.101, made.duration])
    with VideoReader(made.path) as reader:
        # A seam is kept where moving it would halve the chunk before it: 4 s would go
        # back to 2.101 s, onto the seam before it.
        assert _keyed(reader, [0.0, 3.0, 4.0, made.duration], warm) == pytest.approx(
            [0.0, 2.101, 4.0, made.duration]
        )


@pytest.mark.parametrize("cut", [249, 250, 251])
def test_a_cut_at_a_seam_is_found_once(
    coded_video: VideoFactory, cut: int, caplog: pytest.LogCaptureFixture
) -> None:
    # Two chunks of 10 s: the seam at frame 250, the cut a frame before it, on it or after.
    made = coded_video([("red", 100), ("blue", cut - 100), ("green", 500 - cut)], grain=6)
    alone = scan(made.path, ONE)
    assert [round(row.start * made.fps) for row in alone] == [0, 100, cut]
    assert scan_logged(made.path, chunked(10.0), caplog) == alone


def test_a_fade_through_black_across_a_seam_is_one_cut(
    coded_video: VideoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # Black from 4 s to 14 s, longer than the warm-up, across the seam at 10 s: the fade
    # cut is in the middle of it, at 9 s, as one process puts it (besides the cuts into
    # and out of black).
    made = coded_video([("red", 100), ("black", 250), ("blue", 150)], grain=2, gop=25)
    alone = scan(made.path, ONE)
    assert [round(row.start, 1) for row in alone] == [0.0, 4.0, 9.0, 14.0]
    assert scan_logged(made.path, chunked(10.0), caplog) == alone


def test_a_fade_cut_before_a_seam_found_after_it_is_kept(
    coded_video: VideoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # Black from 5 s to 14.48 s: the fade's cut at 9.72 s, before the seam at 10 s, is known
    # at 14.48 s, when the first chunk would otherwise have handed its scene over open.
    made = coded_video([("red", 125), ("black", 237), ("blue", 138)], grain=2, gop=25)
    alone = scan(made.path, ONE)
    assert [round(row.start, 2) for row in alone] == [0.0, 5.0, 9.72, 14.48]
    chunks = scan_logged(made.path, chunked(10.0), caplog)
    assert [(row.start, row.end) for row in chunks] == [(row.start, row.end) for row in alone]


def test_a_video_that_opens_on_black_past_the_first_seam_is_cut_as_in_one_process(
    coded_video: VideoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # The second chunk's warm-up walks back over black keyframes to the start of the file:
    # it decodes from there, not from the last keyframe it looked at.
    made = coded_video([("black", 250), ("red", 125), ("blue", 125)], grain=2, gop=50)
    alone = scan(made.path, ONE)
    assert [row.start for row in alone] == [0.0, 5.0, 10.0, 15.0]
    assert scan_logged(made.path, chunked(5.0), caplog) == alone


def test_a_chunk_in_the_dark_warms_up_from_before_the_fade(coded_video: VideoFactory) -> None:
    made = coded_video([("red", 100), ("black", 250), ("blue", 150)], grain=2, gop=25)
    chunk = Chunk(
        path=made.path,
        name="fade",
        start=10.0,
        end=20.0,
        options=ONE,
        frame_offset=1.0,
        spread=1,
        threads=1,
        skip_nonref=True,
        image_side=None,
    )
    with VideoReader(made.path) as reader:
        # 7.9 s is black: the detectors would see the fade from its middle.
        assert _warm_start(reader, chunk, 12.0) < 4.0
        assert _warm_start(reader, chunk, None) == pytest.approx(7.0)


def test_a_shot_longer_than_a_chunk_is_one_scene(
    coded_video: VideoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # Chunks of 8 s; blue from 4 s to 28 s: the first chunk gives up on it at 16 s and the
    # last closes it.
    made = coded_video([("red", 100), ("blue", 600), ("green", 100)], grain=6, gop=50)
    alone = scan(made.path, ONE)
    assert [round(row.start, 2) for row in alone] == [0.0, 4.0, 28.0]
    assert scan_logged(made.path, chunked(8.0), caplog) == alone
    # Frames spread over the long shot: the first chunk decodes it to its end.
    alone = scan(made.path, ONE, spread=3)
    assert alone[1].spread == (167, 370, 574)
    assert scan_logged(made.path, chunked(8.0), caplog, spread=3) == alone


def test_a_file_cut_short_gives_the_scenes_before_the_damage_then_the_error(
    coded_video: VideoFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    made = coded_video(SCENES, grain=6, gop=25, extra_args=("-movflags", "+faststart"))
    data = made.path.read_bytes()
    path = tmp_path / "cut-short.mp4"
    path.write_bytes(data[: len(data) * 7 // 10])  # the index in front promises all of it

    def listed(options: SceneOptions) -> tuple[list[float], str]:
        starts: list[float] = []
        with pytest.raises(VideoIncomplete, match="incomplete") as raised:
            for found in list_scenes(path, options, 1.0):
                starts.append(found.scene.start)
        # Where decoding stopped (FFmpeg's own words after it depend on its threads).
        stopped = re.search(r"stopped at [\d.]+ s", str(raised.value))
        assert stopped is not None
        return starts, stopped.group()

    alone = listed(ONE)
    assert alone[0], "no scene before the damage: the test proves nothing"
    assert listed(chunked(6.0)) == alone


def test_a_video_with_a_longer_audio_track_ends_where_its_frames_end(
    coded_video: VideoFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    made = coded_video(SCENES, grain=6, gop=25)
    # The container's duration counts 20 s of audio after the last frame: the last two of
    # six chunks hold no frame.
    path = with_audio_track(made.path, tmp_path / "longer-audio.mkv", made.duration + 20)
    alone = scan(path, ONE)
    assert alone[-1].end == pytest.approx(made.duration, abs=0.05)
    assert scan_logged(path, chunked(7.5), caplog) == alone


def test_the_longest_video_accepted_holds_in_chunks(coded_video: VideoFactory) -> None:
    made = coded_video(SCENES, grain=6, gop=25)
    listed: list[float] = []
    with pytest.raises(VideoTooLong, match="15 s"):
        for found in list_scenes(made.path, chunked(6.0), 1.0, max_duration=15.0):
            listed.append(found.scene.start)
    # The chunk that reaches past the limit hands out none of its scenes.
    assert listed
    assert max(listed) < 15.0


def _declare_duration(path: Path, seconds: float) -> None:
    """Write ``seconds`` into a Matroska file's Duration element (a float, milliseconds)."""
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89")
    size = data[at + 2]
    if size == 0x88:
        data[at + 3 : at + 11] = struct.pack(">d", seconds * 1000)
    else:
        assert size == 0x84, f"unexpected Duration element size {size:#x}"
        data[at + 3 : at + 7] = struct.pack(">f", seconds * 1000)
    path.write_bytes(bytes(data))


def test_frames_past_the_declared_duration_are_scanned_with_a_cut_near_it(
    coded_video: VideoFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Frames to 28 s, a duration of 20 s declared, a cut at 20.96 s: the last chunk stops
    # at 21 s, before the cut is confirmed; the rest is scanned by the caller.
    made = coded_video([("red", 200), ("blue", 324), ("green", 176)], grain=6, gop=25)
    path = tmp_path / "longer.mkv"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(made.path), "-c", "copy", str(path)],
        check=True,
    )
    _declare_duration(path, 20.0)
    with VideoReader(path) as reader:
        assert reader.info.duration == pytest.approx(20.0)
    alone = scan(path, ONE)
    assert [round(row.start, 2) for row in alone] == [0.0, 8.0, 20.96]
    assert scan_logged(path, chunked(6.0), caplog) == alone


def test_a_video_stream_that_starts_late_and_dark_is_scanned(
    coded_video: VideoFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The video starts 6 s into the file, on black: a seek to a chunk's warm-up lands after
    # the time asked.
    made = coded_video([("black", 100), ("red", 200), ("blue", 200)], grain=4, gop=25)
    path = with_audio_track(made.path, tmp_path / "late.mkv", 26, offset=6)
    alone = scan(path, ONE)
    assert len(alone) >= 2
    assert scan_logged(path, chunked(6.0), caplog) == alone


def test_chunks_after_a_long_run_of_non_reference_frames_decode_every_frame(
    coded_video: VideoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # Three non-reference B-frames in a row: one process takes them for a long run of
    # skipped frames and decodes every frame from there on, so every chunk after it must.
    made = coded_video(
        SCENES,
        grain=6,
        gop=50,
        scenecut=True,
        extra_args=("-x264-params", "scenecut=0:bframes=3:b-adapt=0:b-pyramid=none"),
    )
    with VideoReader(made.path, skip_nonref=True) as reader:
        for _ in reader.frames():
            pass
        assert reader.skipping_stopped_at == pytest.approx(0.16)
    alone = scan(made.path, ONE)
    with caplog.at_level(logging.INFO, logger="app"):
        assert scan_logged(made.path, chunked(6.6), caplog) == alone
        assert scan(made.path, chunked(6.6)) == alone
    # The worker that met it says so through this process, once though a chunk is scanned
    # again (before, its lines went bare to its own stderr).
    told = [r for r in caplog.records if "decoding every frame from here" in r.getMessage()]
    assert [(r.name, r.processName == "MainProcess") for r in told] == [
        ("app.pipeline.video", False)
    ]


def test_the_thumbnail_of_a_frame_from_a_worker_is_the_decoders(
    coded_video: VideoFactory,
) -> None:
    made = coded_video(SCENES[:2], grain=6)
    with VideoReader(made.path) as reader:
        decoded = next(reader.frames())
        still = decoded.still(64)
        assert np.array_equal(still.thumbnail(THUMBNAIL_SIDE), decoded.thumbnail(THUMBNAIL_SIDE))
        assert still.to_image().size == decoded.to_image(64).size == (64, 48)
        assert np.array_equal(np.asarray(still.to_image(768)), np.asarray(decoded.to_image(64)))


def test_a_stopped_chunked_scan_hands_out_nothing_more(coded_video: VideoFactory) -> None:
    made = coded_video(SCENES, grain=6, gop=25)
    stop = threading.Event()
    found = []
    with VideoReader(made.path, skip_nonref=True) as reader:
        for scene in scan_scenes(reader, chunked(6.0), 1.0, stop=stop, on_time=lambda _: None):
            found.append(scene)
            stop.set()
    assert len(found) == 1


def test_scenes_command_with_workers_lists_what_one_process_lists(
    coded_video: VideoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = coded_video(SCENES, grain=6, gop=25)
    assert main(["scenes", str(made.path)]) == 0
    alone = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert len(alone) == len(SCENES) + 1
    assert main(["scenes", str(made.path), "--scan-workers", "2", "--scan-chunk", "6"]) == 0
    assert list(csv.reader(io.StringIO(capsys.readouterr().out))) == alone


class NumberReader(ScriptedCaptioner):
    """Captions by colour, and notes the frame number painted in each image it is shown."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[int] = []

    def caption(
        self, images: Sequence[Image.Image], requests: Sequence[CaptionRequest] | None = None
    ) -> list[str]:
        self.shown.extend(decode_frame_number(np.asarray(image)) for image in images)
        return super().caption(images, requests)


def test_describe_in_chunks_captions_what_one_process_captions(coded_video: VideoFactory) -> None:
    made = coded_video(SCENES, grain=6, gop=25)

    def described(scenes: SceneOptions) -> tuple[list[tuple[int, float, str]], list[int]]:
        captioner = NumberReader()
        options = DescribeOptions(scenes=scenes, similar_frame_threshold=None)
        found = [
            (d.scene_index, d.frame_time, d.text)
            for d in describe(made.path, captioner, options=options)
        ]
        return found, captioner.shown

    alone = described(ONE)
    assert len(alone[1]) == len(SCENES)
    assert described(chunked(6.6)) == alone


def _closed(start: float, end: float, frame_time: float) -> ClosedScene[StillFrame]:
    frame = StillFrame(
        time=frame_time,
        pixels=np.zeros((2, 2, 3), np.uint8),
        small=np.zeros((THUMBNAIL_SIDE, THUMBNAIL_SIDE, 3), np.float32),
    )
    return ClosedScene(Scene(index=0, start=start, end=end), frame_time, frame)


def _merged(*results: ChunkResult, offset: float = 1.0) -> list[tuple[float, float, float | None]]:
    merge = _Merge(offset, 0.6)
    scenes = [found for result in results for found in merge.add(result)]
    assert merge.end is not None
    scenes += merge.finish(merge.end)
    assert [found.scene.index for found in scenes] == list(range(len(scenes)))
    return [
        (found.scene.start, found.scene.end, None if found.frame is None else found.frame[0])
        for found in scenes
    ]


@pytest.mark.parametrize("later", [19.96, 20.0, 20.04])
def test_chunks_that_put_a_cut_a_frame_apart_give_one_cut(later: float) -> None:
    merged = _merged(
        ChunkResult(scenes=[_closed(0.0, 10.0, 1.0), _closed(10.0, 20.0, 11.0)]),
        ChunkResult(scenes=[_closed(later, 30.0, later + 1.0)], end=30.0),
    )
    # The earlier chunk's cut stands; the later chunk's frame, inside the scene, is kept.
    assert merged == [(0.0, 10.0, 1.0), (10.0, 20.0, 11.0), (20.0, 30.0, later + 1.0)]


def test_a_scene_held_open_is_closed_by_the_next_cut_with_its_frame() -> None:
    merged = _merged(
        ChunkResult(scenes=[_closed(0.0, 19.96, 1.0)], open=_closed(19.96, 25.0, 20.96)),
        ChunkResult(scenes=[_closed(20.0, 30.0, 21.0)]),
        ChunkResult(scenes=[_closed(40.0, 50.0, 41.0)], end=50.0),
    )
    # The later chunk closed the open scene itself (a frame later): its view stands, from the
    # earlier chunk's cut. No chunk has a scene from 30 s: it comes without a frame.
    assert merged == [
        (0.0, 19.96, 1.0),
        (19.96, 30.0, 21.0),
        (30.0, 40.0, None),
        (40.0, 50.0, 41.0),
    ]
    merged = _merged(
        ChunkResult(scenes=[_closed(0.0, 19.96, 1.0)], open=_closed(19.96, 25.0, 20.96)),
        ChunkResult(scenes=[_closed(40.0, 50.0, 41.0)], end=50.0),
    )
    assert merged == [(0.0, 19.96, 1.0), (19.96, 40.0, 20.96), (40.0, 50.0, 41.0)]


def test_a_held_frame_outside_the_scene_it_closes_as_is_not_kept() -> None:
    # A fade's cut came late: the open scene's only frames are near where decoding stopped.
    merged = _merged(
        ChunkResult(scenes=[_closed(0.0, 22.0, 1.0)], open=_closed(22.0, 274.0, 273.4)),
        ChunkResult(scenes=[_closed(248.0, 280.0, 249.0)], end=280.0),
    )
    assert merged == [(0.0, 22.0, 1.0), (22.0, 248.0, None), (248.0, 280.0, 249.0)]


def test_a_frame_before_its_merged_scene_is_not_kept() -> None:
    # Frame offset 0: the later chunk's cut a frame early, its frame on that cut.
    merged = _merged(
        ChunkResult(scenes=[_closed(0.0, 20.04, 0.0)]),
        ChunkResult(scenes=[_closed(20.0, 30.0, 20.0)], end=30.0),
        offset=0.0,
    )
    assert merged == [(0.0, 20.04, 0.0), (20.04, 30.0, None)]
