"""The keyframe-guided scan against the full scan, the `scenes` command, a fade-in at the start,
and what the main thread does before the first frame, on generated video."""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

import app.pipeline.scan as scan_module
import app.pipeline.video as video_module
from app.cli import main
from app.errors import VideoIncomplete, VideoTooLong
from app.models import CaptionRequest
from app.pipeline.describe import DescribeOptions, describe
from app.pipeline.letterbox import PictureArea
from app.pipeline.scan import (
    KeyframeCut,
    KeyframeLook,
    Stretch,
    colour_histogram,
    content_difference,
    list_scenes,
    plan_keyframe_scan,
    prefetched,
    scan_scenes,
)
from app.pipeline.scenes import KeyframeRule, ScanMode, SceneOptions
from app.pipeline.types import Scene
from app.pipeline.video import DecodedFrame, GroupOfPictures, KeyframePass, VideoReader
from tests.fixtures.media import (
    MadeVideo,
    VideoFactory,
    decode_frame_number,
    make_lavfi_video,
    probe_video,
    with_audio_track,
)
from tests.fixtures.models import ScriptedCaptioner

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

# Always the keyframe path, however much of these short videos it decodes fully.
KEYFRAMES = SceneOptions(scan=ScanMode.KEYFRAMES, keyframes=KeyframeRule(most_refined=1.0))
FULL = SceneOptions(scan=ScanMode.FULL)


def scan(path: Path, options: SceneOptions) -> list[tuple[float, float, float, int]]:
    """(start, end, frame time, frame number painted in the frame) of every scene."""
    with VideoReader(path, skip_nonref=options.skip_nonref_frames) as reader:
        scenes = scan_scenes(reader, options, 1.0, stop=threading.Event(), on_time=lambda _: None)
        return _listed(scenes)


def _listed(scenes: Iterator[scan_module.ScannedScene]) -> list[tuple[float, float, float, int]]:
    found: list[tuple[float, float, float, int]] = []
    # As describe() and list_scenes take them: frames the scan did not keep are decoded in
    # the background while it goes on (``prefetched``).
    for item in prefetched(scenes, lambda found: found):
        chosen = item.frame()
        assert chosen is not None
        time, frame = chosen
        number = decode_frame_number(np.asarray(frame.to_image()))
        found.append((item.scene.start, item.scene.end, time, number))
    return found


@pytest.mark.parametrize(
    "encoding",
    [
        # x264's defaults: keyframes at the cuts it sees, at most 250 frames apart.
        {"scenecut": True, "extra_args": ("-preset", "medium")},
        # A streaming encode: a keyframe every second, none at cuts.
        {"gop": 25},
    ],
    ids=["x264-default", "fixed-gop"],
)
def test_keyframe_scan_finds_the_cuts_and_frames_of_the_full_scan(
    coded_video: VideoFactory, encoding: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    made = coded_video(SCENES, grain=6, **encoding)
    with caplog.at_level(logging.INFO, logger="app.pipeline.scan"):
        fast = scan(made.path, KEYFRAMES)
    full = scan(made.path, FULL)
    assert "stretches to decode fully" in caplog.text
    assert len(fast) == len(full) >= len(SCENES) - 1
    for (start, end, time, number), (full_start, full_end, full_time, _) in zip(
        fast, full, strict=True
    ):
        assert abs(start - full_start) <= 2 / made.fps
        assert abs(end - full_end) <= 2 / made.fps
        # The frame handed out is the one shown at its time, one second into the scene,
        # as the full scan chose it.
        assert number == round(time * made.fps)
        assert abs(time - full_time) <= 2 / made.fps + 1e-6
        assert abs(time - (start + 1.0)) <= 2 / made.fps + 1e-6


@pytest.mark.parametrize("spread", [1, 3])
def test_the_keyframe_scan_says_when_a_captioner_asks_for_more_frames_than_it_keeps(
    coded_video: VideoFactory, caplog: pytest.LogCaptureFixture, spread: int
) -> None:
    made = coded_video(SCENES, grain=6, scenecut=True, extra_args=("-preset", "medium"))
    with (
        VideoReader(made.path, skip_nonref=True) as reader,
        caplog.at_level(logging.INFO, logger="app.pipeline.scan"),
    ):
        found = list(
            scan_scenes(
                reader, KEYFRAMES, 1.0, stop=threading.Event(), on_time=lambda _: None,
                spread=spread,
            )
        )  # fmt: skip
    assert "stretches to decode fully" in caplog.text
    assert "scanning every frame" not in caplog.text
    assert len(found) >= len(SCENES) - 1
    assert all(scene.spread == () for scene in found)
    warned = "the captioner is shown that one, not 3 spread over the scene" in caplog.text
    assert warned == (spread > 1)


def test_fixed_gop_scan_skips_the_groups_without_a_cut(
    coded_video: VideoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    made = coded_video(SCENES, grain=6, gop=25)
    with caplog.at_level(logging.INFO, logger="app.pipeline.scan"):
        scan(made.path, KEYFRAMES)
    [plan] = [r.getMessage() for r in caplog.records if "stretches to decode fully" in r.message]
    share = int(plan.rsplit("(", 1)[1].split("%")[0])
    # Nine scenes in 27 one-second groups: the groups with a cut, and the last one.
    assert share < 60


def test_the_keyframe_pass_finds_the_intra_frames_the_encoder_put_inside_groups(
    coded_video: VideoFactory,
) -> None:
    # x264's defaults: a cut too soon after a keyframe gets an intra frame, not a new group.
    made = coded_video(SCENES, grain=6, scenecut=True, extra_args=("-preset", "medium"))
    rows = [row[:3] for row in probe_video(made.path, "frame=pts_time,pict_type,key_frame")]
    keyframes = [float(time) for key, time, kind in rows if key == "1"]
    intra = [float(time) for key, time, kind in rows if key == "0" and kind == "I"]
    assert intra, "x264 put no intra frame inside a group: the test proves nothing"
    with VideoReader(made.path) as reader:
        frames = reader.keyframes()
        for _ in frames:
            pass
    assert [group.start for group in frames.groups] == pytest.approx(keyframes)
    expected = [
        sum(1 for time in intra if start < time < end)
        for start, end in zip(keyframes, [*keyframes[1:], frames.end], strict=True)
    ]
    assert [group.intra for group in frames.groups] == expected


def test_the_keyframe_pass_finds_x265s_intra_frames_inside_groups(tmp_path: Path) -> None:
    # Three shots of a second each, cut before x265's shortest group (min-keyint) is over:
    # it codes each cut as an intra frame that is no keyframe, which FFmpeg's HEVC decoder,
    # decoding intra frames alone, takes for damaged.
    path = tmp_path / "three-shots.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-filter_complex",
         "testsrc=d=1:r=25:s=160x120,format=yuv420p[a];"
         "rgbtestsrc=d=1:r=25:s=160x120,format=yuv420p[b];"
         "mandelbrot=s=160x120:r=25,trim=duration=2,format=yuv420p[c];"
         "[a][b][c]concat=n=3:v=1:a=0",
         "-c:v", "libx265", "-x265-params", "keyint=100:min-keyint=60:log-level=error",
         str(path)],
        check=True,
    )  # fmt: skip
    with VideoReader(path) as reader:
        frames = reader.keyframes()
        for _ in frames:
            pass
    assert frames.tells_intra
    assert [(group.start, group.intra) for group in frames.groups] == [(0.0, 2)]
    assert frames.groups[0].last_intra == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("times", "through"),
    [
        # Every frame decoded (24 fps): 0.25 s past the end holds more than three.
        ([3.75, 3.79, 3.83, 3.88, 3.92, 3.96, 4.0, 4.04, 4.08], 4.04),
        # Non-reference frames skipped: a Joker trailer's cut on the keyframe that ends a
        # stretch (3.795 s) was confirmed by its second reference frame after it, 4.046 s,
        # 0.2 ms past the 0.25 s.
        ([3.67, 3.795, 3.92, 4.046, 4.171, 4.296], 4.171),
    ],
    ids=["every-frame", "skipping"],
)
def test_a_stretch_decodes_three_frames_past_its_end_however_far_apart(
    times: list[float], through: float
) -> None:
    frames = [SimpleNamespace(time=time) for time in times]
    passed = scan_module._past_end(iter(frames), 3.795, 0.25)  # type: ignore[arg-type]
    assert [frame.time for frame in passed] == [time for time in times if time <= through]


@pytest.mark.parametrize("threads", [1, 16])
def test_the_keyframe_pass_knows_the_intra_frames_as_it_goes(tmp_path: Path, threads: int) -> None:
    # The scan judges groups while the pass goes on (``groups_so_far``): each must already
    # count its intra frames, however many threads decode (on 16 cores a decoder that found
    # them handed them out three keyframes late, and the scan of Big Buck Bunny handed over
    # to the full scan; slice headers are read as each packet is demuxed).
    # Shots of 1.2 s and 0.4 s: x264 keys the first of each pair and codes the second, too
    # soon after the keyframe, as an intra frame inside the group.
    names = ["testsrc", "rgbtestsrc", "smptebars", "mandelbrot", "testsrc2"]
    shots = [(names[index % len(names)], 1.2 if index % 2 == 0 else 0.4) for index in range(20)]
    path = _shots(tmp_path / "shots.mp4", shots, "-bf", "3")
    seen: list[tuple[bool, list[GroupOfPictures]]] = []
    with VideoReader(path, threads=threads) as reader:
        frames = reader.keyframes()
        for frame in frames:
            if frame.frame.key_frame:
                groups = frames.groups_so_far()
                seen.append((frames.tells_intra, groups))
                # Those from a group on, as the plan's first steps are settled
                # (``scan._EarlyStretches``): the same, from what was demuxed since.
                for since in groups:
                    later = [group for group in groups if group.start >= since.start]
                    assert frames.groups_so_far(since.start) == later
    final = {group.start: group.intra for group in frames.groups}
    assert sum(1 for intra in final.values() if intra) >= 3
    assert all(tells for tells, _ in seen)
    for _, groups in seen:
        assert [group.intra for group in groups] == [final[group.start] for group in groups]
    # At the last keyframe, every group but the last, which the end of the stream ends.
    assert len(seen[-1][1]) == len(frames.groups) - 1


@pytest.mark.parametrize(
    ("x264", "flash_groups"),
    [
        # Open GOPs: FFmpeg's H.264 decoder, decoding intra frames alone, handed out the
        # first three keyframes and then nothing, so groups with a flash of another picture
        # inside (an intra frame where it begins and one where it ends) looked like clock
        # groups with none. Their slice headers tell them.
        ("open-gop=1", {10.0: 2, 14.0: 2, 18.0: 2, 22.0: 2}),
        # Periodic intra refresh: the keyframes are P-frames whose intra macroblocks are
        # spread over the frames after them, and the encoder's intra frames tell nothing.
        ("intra-refresh=1", {10.2: None, 14.2: None, 18.2: None, 22.2: None}),
    ],
    ids=["open-gop", "intra-refresh"],
)
def test_flashes_inside_x264s_groups_are_decoded(
    tmp_path: Path, x264: str, flash_groups: dict[float, int | None]
) -> None:
    # The full scan cuts where each flash begins (it ends too soon for a second cut).
    shots = [("testsrc", 10.2)] + [("rgbtestsrc", 0.32), ("testsrc", 3.68)] * 4
    path = _shots(
        tmp_path / "flashes.mp4",
        shots,
        *("-bf", "3", "-x264-params", f"{x264}:keyint=50:min-keyint=25"),
    )
    with VideoReader(path) as reader:
        frames = reader.keyframes()
        for _ in frames:
            pass
    intra = {round(group.start, 2): group.intra for group in frames.groups}
    assert {start: intra[start] for start in flash_groups} == flash_groups
    full = [(s.scene.start, s.frame_time) for s in list_scenes(path, FULL, 1.0)]
    assert [round(start, 2) for start, _ in full] == [0.0, 10.2, 14.2, 18.2, 22.2]
    assert [(s.scene.start, s.frame_time) for s in list_scenes(path, KEYFRAMES, 1.0)] == full


def test_a_cut_on_the_keyframe_that_ends_a_stretch_is_confirmed_past_skipped_frames(
    tmp_path: Path,
) -> None:
    # 23.976 fps with two non-reference B-frames between reference frames (as the Joker
    # trailer): skipping them leaves one frame after the cut within 0.25 s, the second
    # 0.2 ms past it, and the detectors confirm a cut two frames after it.
    path = tmp_path / "skipped.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
         "testsrc=d=3.003:r=24000/1001:s=320x240,format=yuv420p[a];"
         "testsrc=d=3.003:r=24000/1001:s=320x240,hflip,format=yuv420p[b];"
         "[a][b]concat=n=2:v=1:a=0",
         "-c:v", "libx264",
         "-x264-params", "keyint=250:min-keyint=10:scenecut=40:bframes=2:b-pyramid=none:b-adapt=0",
         str(path)],
        check=True,
    )  # fmt: skip
    with VideoReader(path) as reader:
        frames = reader.keyframes()
        for _ in frames:
            pass
    assert [round(group.start, 3) for group in frames.groups] == [0.0, 3.003]
    duration = frames.end
    steps: list[Stretch | KeyframeCut] = [
        Stretch(0.0, 3.003, last=False),
        Stretch(3.003, duration, last=True),
    ]
    assert [start for start, *_ in _follow(path, steps, skip_nonref=True)] == [0.0, 3.003]


def test_a_cut_coded_without_a_keyframe_or_intra_frame_is_found(
    coded_video: VideoFactory,
) -> None:
    # Keyframes on every cut but blue to yellow (frame 107), which x264 (scene-cut detection
    # off) codes as a P-frame, as in clips joined with keyframes only at the joins. The
    # keyframes around it (blue, white) look like a clean cut on the white one, placed
    # early (the cyan group is the longest); no intra frame says where the encoder saw a
    # change, so the packet sizes must.
    scenes = [
        ("red", 60),
        ("blue", 47),
        ("yellow", 71),
        ("white", 55),
        ("cyan", 200),
        ("green", 40),
    ]
    keyframes = "2.40,7.12,9.32,17.32"
    made = coded_video(scenes, grain=6, extra_args=("-force_key_frames", keyframes))
    fast = scan(made.path, KEYFRAMES)
    full = scan(made.path, FULL)
    starts = [round(start * made.fps) for start, *_ in full]
    assert starts == [0, 60, 107, 178, 233, 433]
    assert [round(start * made.fps) for start, *_ in fast] == starts


def test_a_frame_decoded_by_a_stretch_is_not_decoded_again(
    coded_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = coded_video(SCENES, grain=6, gop=25)
    full = scan(made.path, FULL)

    def no_grab(*args: object) -> None:
        pytest.fail("a scene's frame was decoded again")

    monkeypatch.setattr(scan_module.FrameGrab, "__call__", no_grab)
    # Groups longer than 0.5 s are all decoded: one stretch over the whole video, which
    # decodes every scene's frame.
    everything = SceneOptions(
        scan=ScanMode.KEYFRAMES, keyframes=KeyframeRule(longest_gop=0.5, most_refined=1.0)
    )
    fast = scan(made.path, everything)
    assert len(fast) == len(full) >= len(SCENES) - 1
    for (_, _, time, number), (_, _, full_time, _) in zip(fast, full, strict=True):
        assert number == round(time * made.fps)
        assert abs(time - full_time) <= 1e-6


def test_the_keyframe_pass_stops_once_a_full_decode_is_sure_to_be_cheaper(
    coded_video: VideoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    made = coded_video(SCENES, grain=6, gop=25)
    # Threshold 0: every group whose keyframes are not a clean cut needs a full decode, so
    # the sure share passes a tenth early in the pass.
    little = SceneOptions(
        scan=ScanMode.KEYFRAMES, keyframes=KeyframeRule(threshold=0.0, most_refined=0.1)
    )
    with caplog.at_level(logging.INFO, logger="app.pipeline.scan"):
        fast = scan(made.path, little)
    [stopped] = [r.getMessage() for r in caplog.records if "pass stops there" in r.message]
    seen = float(stopped.split(" of the first ")[1].split(" s")[0])
    # x264 with scene-cut detection off says nothing of where it saw scene changes: the
    # pass checks from a tenth of the video on, not from a third.
    assert seen < made.duration / 3
    assert "scanning every frame" in caplog.text
    assert fast == scan(made.path, FULL)


def test_a_keyframe_pass_that_stops_early_still_skips_what_it_saw_without_a_cut(
    coded_video: VideoFactory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = coded_video(SCENES, grain=6, gop=25)
    decoded: list[float] = []
    frames_between, frames = VideoReader.frames_between, VideoReader.frames

    def spy_between(reader: VideoReader, start: float, end: float) -> Iterator[DecodedFrame]:
        decoded.append(start)
        return frames_between(reader, start, end)

    def spy_frames(reader: VideoReader, start: float = 0.0) -> Iterator[DecodedFrame]:
        decoded.append(start)
        return frames(reader, start)

    monkeypatch.setattr(VideoReader, "frames_between", spy_between)
    monkeypatch.setattr(VideoReader, "frames", spy_frames)
    picky = SceneOptions(scan=ScanMode.KEYFRAMES, keyframes=KeyframeRule(most_refined=0.3))
    with caplog.at_level(logging.INFO, logger="app.pipeline.scan"):
        fast = scan(made.path, picky)
    [stopped] = [r.getMessage() for r in caplog.records if "pass stops there" in r.message]
    rest = float(stopped.split("every frame from ")[1].split(" s")[0])
    # The first two one-second groups (red, no cut) are skipped; the group with the cut
    # to green is decoded, then everything from where the pass stopped.
    assert 0 < rest < made.duration / 3
    assert decoded[0] >= 2.0 - 1e-6
    assert decoded[-1] == pytest.approx(rest)
    decoded.clear()
    assert fast == scan(made.path, FULL)
    assert decoded == [0.0]


def test_a_fade_in_from_black_at_the_start_is_not_a_cut(tmp_path: Path) -> None:
    made = make_lavfi_video(
        tmp_path / "opening.mp4",
        [("red", 3), ("blue", 3), ("green", 3)],
        size=(320, 240),
        fade_to_black=[1],
        fade_in_start=True,
    )
    for options in (FULL, KEYFRAMES):
        starts = [start for start, *_ in scan(made.path, options)]
        # No cut in the opening fade; the fade through black between blue and green stays.
        assert len(starts) == 3, options.scan
        for found, truth in zip(starts[1:], made.cut_times, strict=True):
            assert abs(found - truth) <= 2 / made.fps


def test_scenes_command_writes_csv_and_json(coded_video: VideoFactory, tmp_path: Path) -> None:
    made = coded_video(SCENES, grain=6, gop=25)
    stdout = io.StringIO()
    assert main(["scenes", str(made.path)], stdout=stdout) == 0
    rows = list(csv.DictReader(io.StringIO(stdout.getvalue())))
    assert [int(r["Scene Number"]) for r in rows] == list(range(1, len(rows) + 1))
    assert len(rows) >= len(SCENES) - 1
    assert rows[0]["Start Timecode"] == "00:00:00.000"
    assert rows[-1]["End Frame"] == str(made.frame_count)
    for row in rows:
        start, frame = float(row["Start Time (seconds)"]), float(row["Frame Time (seconds)"])
        assert abs(frame - (start + 1.0)) <= 2 / made.fps + 1e-6
    for row, next_row in itertools.pairwise(rows):
        assert row["End Time (seconds)"] == next_row["Start Time (seconds)"]
        assert int(row["End Frame"]) + 1 == int(next_row["Start Frame"])

    out = tmp_path / "scenes.json"
    assert (
        main(["scenes", str(made.path), "-f", "json", "-o", str(out), "--scan", "keyframes"]) == 0
    )
    document = json.loads(out.read_text())
    assert document["frame_rate"] == made.fps
    starts = [s["start"] for s in document["scenes"]]
    assert len(starts) == len(rows)
    for found, row in zip(starts, rows, strict=True):
        assert abs(found - float(row["Start Time (seconds)"])) <= 2 / made.fps


def test_scenes_command_reports_a_bad_video_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    assert main(["scenes", str(bad)], stdout=io.StringIO()) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad} is not a readable video")
    assert err.count("\n") == 1
    assert not list(tmp_path.glob("*.part"))


def test_nothing_heavy_runs_before_the_first_frame(
    six_scene_video: MadeVideo,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The novelty scorer (WordNet for METEOR, seconds to load) and the captioner's model
    are built only once the scan has decoded its first frame."""
    events: list[str] = []
    # The module, not the function that app.pipeline exports under the same name.
    describe_module = sys.modules["app.pipeline.describe"]
    build = describe_module.make_novelty_filter

    def recorded_build(*args: object, **kwargs: object) -> object:
        events.append("novelty scorer built")
        return build(*args, **kwargs)  # type: ignore[arg-type]

    class RecordingCaptioner(ScriptedCaptioner):
        def caption(
            self,
            images: Sequence[Image.Image],
            requests: Sequence[CaptionRequest] | None = None,
        ) -> list[str]:
            events.append("captioner called")
            return super().caption(images, requests)

    class FirstFrame(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "first frame decoded" in record.getMessage():
                events.append("first frame")

    handler = FirstFrame()
    logging.getLogger("app.pipeline.describe").addHandler(handler)
    monkeypatch.setattr(describe_module, "make_novelty_filter", recorded_build)
    try:
        with caplog.at_level(logging.DEBUG, logger="app.pipeline.describe"):
            list(describe(six_scene_video.path, RecordingCaptioner(), options=DescribeOptions()))
    finally:
        logging.getLogger("app.pipeline.describe").removeHandler(handler)
    assert events[0] == "first frame"
    assert events.index("novelty scorer built") < events.index("captioner called")


def _look(brightness: float, following: list[float], motion: list[float]) -> KeyframeLook:
    return KeyframeLook(
        brightness=brightness,
        histogram=np.zeros((16, 8), np.float32),
        following=following,
        motion=motion,
    )


@pytest.mark.parametrize(
    ("after", "intra", "cut"),
    [
        # The Sintel trailer (x264): a keyframe three levels a frame into a fade to black.
        ([23.6, 20.6, 17.3, 14.3], 0, False),
        # The same keyframe with the frames after it holding still: a clean cut.
        ([26.2, 26.5, 26.1, 26.4], 0, True),
        # ... but not where the stream does not tell its intra frames: a cut the encoder
        # put no keyframe on may lie in the group before it.
        ([26.2, 26.5, 26.1, 26.4], None, False),
    ],
    ids=["fading", "still", "intra-unknown"],
)
def test_a_keyframe_in_a_fade_is_not_taken_as_a_clean_cut(
    after: list[float], intra: int | None, cut: bool
) -> None:
    groups = [
        GroupOfPictures(0.0, 5.12, intra=intra),
        GroupOfPictures(5.12, 8.96, intra=intra),
        GroupOfPictures(8.96, 12.0, intra=intra),
    ]
    looks = {
        0.0: _look(130.0, [130.0, 130.1, 130.0, 130.2], [0.2, 0.2, 0.1, 0.2]),
        5.12: _look(134.2, [134.2, 132.0, 131.0, 129.8], [0.0, 0.8, 0.5, 1.5]),
        8.96: _look(26.3, after, [2.4, 2.9, 6.9, 5.1]),
    }
    looks[0.0].difference, looks[0.0].colour_distance = 2.0, 0.05
    looks[5.12].difference, looks[5.12].colour_distance = 50.8, 0.78
    looks[8.96].difference, looks[8.96].colour_distance = 3.0, 0.05

    plan = plan_keyframe_scan(groups, looks, SceneOptions(scan=ScanMode.KEYFRAMES))

    assert (KeyframeCut(8.96) in plan) is cut
    assert any(isinstance(step, Stretch) and step.start <= 5.12 < step.end for step in plan) != cut


# The bench video in x264 defaults: a busy shot (a cellular automaton, its packets' upper
# quartile 35 kB) cut to colour bars, which x264 keyed four frames late (3.08 s and 3.24 s).
_BUSY_SHOT = (12000,) * 40 + (35000,) * 36 + (55904, 71689, 83244, 47347)


@pytest.mark.parametrize(
    ("sizes", "next_key_size", "cut"),
    [
        # The new shot's first frames cost 0.30-0.53 of the keyframe that ends the group:
        # the cut came before it, and the group is decoded.
        (_BUSY_SHOT, 158423, False),
        # The same packets before a keyframe over five times as big: a clean cut.
        (_BUSY_SHOT, 1_000_000, True),
        # Big packets for the group, whatever the keyframe (the first test of a late key).
        ((12000,) * 76 + (55904, 71689, 83244), 1_000_000, False),
        # One big packet, as a flash makes, is no late key.
        ((12000,) * 77 + (83244, 12000), 158423, True),
    ],
    ids=["costly-before-key", "cheap-before-key", "big-for-group", "one-big"],
)
def test_a_cut_the_encoder_keyed_late_is_not_taken_on_the_keyframe(
    sizes: tuple[int, ...], next_key_size: int, cut: bool
) -> None:
    middle = GroupOfPictures(4.0, 7.24, intra=0, sizes=sizes, next_key_size=next_key_size)
    looks = {
        4.0: _look(73.6, [73.0, 74.1, 73.2], [5.0, 5.1, 5.0]),
        7.24: _look(104.3, [104.3, 104.2, 104.4], [8.6, 8.7, 8.6]),
    }
    assert _judged(middle, looks, 82.4, 0.96) == (cut, not cut)


def _judged(
    middle: GroupOfPictures, looks: dict[float, KeyframeLook], difference: float, colour: float
) -> tuple[bool, bool]:
    """Whether the plan takes a cut on the end keyframe of ``middle`` (the second of three
    groups, after one whose keyframes are alike), and whether it decodes ``middle``, whose
    keyframes (``looks``) are ``difference`` and ``colour`` apart."""
    groups = [
        GroupOfPictures(0.0, middle.start, intra=0),
        middle,
        GroupOfPictures(middle.end, middle.end + 5.8, intra=0),
    ]
    looks = {0.0: _look(72.1, [72.0, 72.3, 72.1], [4.9, 5.2, 5.0]), **looks}
    looks[0.0].difference, looks[0.0].colour_distance = 3.0, 0.05
    looks[middle.start].difference = difference
    looks[middle.start].colour_distance = colour
    plan = plan_keyframe_scan(groups, looks, SceneOptions(scan=ScanMode.KEYFRAMES))
    decoded = any(
        isinstance(step, Stretch) and step.start <= middle.start < step.end for step in plan
    )
    return KeyframeCut(middle.end) in plan, decoded


@pytest.mark.parametrize(
    ("sizes", "cut"),
    [
        # The Joker trailer in x264 veryfast: a moving shot, a cut to black coded as a
        # 19-byte P-frame, a second of black; the keyframe after it costs 10,977 bytes.
        ((482, 865, 525, 2393, 616, 885, 515, 2444, 661, 19, 14, 25, 14, 16, 14, 18), False),
        # A title card: one mostly intra P-frame, then the picture stands still.
        ((1712, 1704, 3118, 15, 58, 13, 4337, 13, 15, 13, 93, 13, 15, 13, 21, 13), False),
        # Still from the keyframe on: nothing changed inside the group.
        ((1712, 1704, 3118, 1500, 15, 13, 15, 13, 15, 13, 15, 13, 15, 13, 21, 13), True),
        # Moving up to the keyframe.
        ((482, 865, 525, 2393, 616, 885, 515, 2444, 661, 519, 614, 625, 714, 616), True),
    ],
    ids=["cut-to-black", "title-card", "still-throughout", "moving"],
)
def test_a_group_that_changed_and_then_stood_still_is_decoded(
    sizes: tuple[int, ...], cut: bool
) -> None:
    middle = GroupOfPictures(4.0, 5.63, intra=0, sizes=sizes, next_key_size=10977)
    looks = {
        4.0: _look(56.2, [56.5, 56.1, 56.1], [4.0, 3.8, 3.4]),
        5.63: _look(110.3, [110.3, 110.3, 110.3], [0.0, 0.0, 0.0]),
    }
    assert _judged(middle, looks, 88.6, 0.89) == (cut, not cut)


def test_a_cut_to_black_that_the_encoder_did_not_key_is_found(tmp_path: Path) -> None:
    # x264 veryfast codes the cut from still bars to black as a small P-frame and keys the
    # cut from black to the next shot: the keyframes on either side differ like a clean cut.
    shots = [("testsrc", 1.6), ("smptebars", 1.4), ("color=black", 1.0), ("rgbtestsrc", 2.6),
             ("testsrc", 1.8)]  # fmt: skip
    path = _shots(
        tmp_path / "black.mp4",
        shots,
        *("-preset", "veryfast", "-x264-params", "keyint=120"),
        size="640x360",
    )
    full = [(s.scene.start, s.frame_time) for s in list_scenes(path, FULL, 1.0)]
    assert [round(start, 2) for start, _ in full] == [0.0, 1.6, 3.04, 4.0, 6.6]
    assert [(s.scene.start, s.frame_time) for s in list_scenes(path, KEYFRAMES, 1.0)] == full


@pytest.mark.parametrize("scene_change", [True, False], ids=["keyed-for-a-change", "not"])
def test_keyframes_alike_skip_their_group_unless_the_encoder_keyed_a_scene_change(
    scene_change: bool,
) -> None:
    # A countdown leader (x264): each number's first frame is a keyframe and looks like the
    # last number's first frame, but the frame before it showed the end of the last number.
    groups = [
        GroupOfPictures(0.0, 0.834, intra=0, interval_share=0.1 if scene_change else None),
        GroupOfPictures(0.834, 1.668, intra=0, interval_share=0.1 if scene_change else None),
        GroupOfPictures(1.668, 2.5, intra=0),
    ]
    looks = {
        0.0: _look(120.0, [120.0, 120.0], [0.0, 0.0]),
        0.834: _look(119.5, [119.5, 119.5], [0.0, 0.0]),
        1.668: _look(120.2, [120.2, 120.2], [0.0, 0.0]),
    }
    looks[0.0].difference, looks[0.0].colour_distance = 4.9, 0.0
    looks[0.834].difference, looks[0.834].colour_distance = 5.0, 0.0

    plan = plan_keyframe_scan(groups, looks, SceneOptions(scan=ScanMode.KEYFRAMES))

    decoded = any(isinstance(step, Stretch) and step.start <= 0.0 < step.end for step in plan)
    assert decoded is scene_change


def test_the_keyframe_pass_tells_the_groups_the_encoder_ended_for_a_scene_change(
    tmp_path: Path,
) -> None:
    # Cuts at 1 s and 2.5 s, x264 keying scene changes, and by the clock every 100 frames:
    # the groups its scene changes ended within 50 frames say so (25 and about 38 frames);
    # the last, ended by the stream, does not.
    path = tmp_path / "cuts.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-filter_complex",
         "testsrc=d=1:r=25:s=160x120,format=yuv420p[a];"
         "rgbtestsrc=d=1.5:r=25:s=160x120,format=yuv420p[b];"
         "mandelbrot=s=160x120:r=25,trim=duration=4,format=yuv420p[c];"
         "[a][b][c]concat=n=3:v=1:a=0",
         "-c:v", "libx264", "-x264-params", "keyint=100:min-keyint=10:scenecut=40",
         str(path)],
        check=True,
    )  # fmt: skip
    with VideoReader(path) as reader:
        frames = reader.keyframes()
        for _ in frames:
            pass
    starts = [round(group.start, 2) for group in frames.groups]
    assert len(starts) == 3 and starts[:2] == [0.0, 1.0] and 2.5 <= starts[2] < 2.6
    assert [group.scene_change for group in frames.groups[:2]] == [True, True]
    assert frames.groups[0].interval_share == pytest.approx(25 / 100)
    assert not frames.groups[-1].scene_change
    assert frames.groups[-1].interval_share is None


@pytest.mark.parametrize(
    ("share", "motion", "cut"),
    [
        # Big Buck Bunny (x264): a cut between two shots of the same grass, keyframes 58.5
        # apart in colours 0.61 apart, both shots still (0.5 and 1.0 a frame), keyed half
        # way into x264's interval: a clean cut.
        (0.51, (0.51, 0.99), True),
        # A zoom of the bench video: 3.3 a frame, 16 times less than the keyframes' change.
        (0.51, (3.32, 3.44), False),
        # Keyed late in the interval, where x264 keys a camera move too.
        (0.86, (0.51, 0.99), False),
        # An encoder that does not say where its interval stood.
        (None, (0.51, 0.99), False),
    ],
    ids=["still-shots", "zoom", "keyed-late-in-interval", "unknown-interval"],
)
def test_a_cut_between_still_shots_of_alike_colours_is_taken_where_the_encoder_keyed_it_early(
    share: float | None, motion: tuple[float, float], cut: bool
) -> None:
    groups = [
        GroupOfPictures(0.0, 10.0, intra=0),
        GroupOfPictures(10.0, 15.29, intra=0, interval_share=share),
        GroupOfPictures(15.29, 20.0, intra=0),
    ]
    looks = {
        0.0: _look(70.0, [70.1, 70.0], [0.4, 0.5]),
        10.0: _look(67.5, [67.6, 67.4], [motion[0]] * 2),
        15.29: _look(120.6, [120.5, 120.7], [motion[1]] * 2),
    }
    looks[0.0].difference, looks[0.0].colour_distance = 3.0, 0.05
    looks[10.0].difference, looks[10.0].colour_distance = 58.5, 0.61

    plan = plan_keyframe_scan(groups, looks, SceneOptions(scan=ScanMode.KEYFRAMES))

    assert (KeyframeCut(15.29) in plan) is cut
    decoded = any(isinstance(step, Stretch) and step.start <= 10.0 < step.end for step in plan)
    assert decoded is not cut


def _keyframe_pass(path: Path, seconds: int, encoder: str, params: str) -> KeyframePass:
    """The keyframe pass, run to its end, over a test pattern encoded with x264 or x265 and
    these options (``-x264-params`` or ``-x265-params``)."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
         f"testsrc=duration={seconds}:size=160x120:rate=25", "-c:v", encoder,
         f"-{encoder.removeprefix('lib')}-params", params, str(path)],
        check=True,
    )  # fmt: skip
    with VideoReader(path) as reader:
        frames = reader.keyframes()
        for _ in frames:
            pass
    return frames


@pytest.mark.parametrize(("scenecut", "tells"), [(40, True), (0, False)])
def test_the_keyframe_pass_reads_x265s_scene_cut_setting(
    tmp_path: Path, scenecut: int, tells: bool
) -> None:
    # x265 writes its options into the codec's extradata (x264 into the first packet): with
    # scene-cut detection on, a group without an intra frame inside holds no scene change.
    frames = _keyframe_pass(
        tmp_path / f"x265-{scenecut}.mp4", 2, "libx265", f"scenecut={scenecut}:log-level=error"
    )
    assert frames.tells_intra is tells
    assert all((group.intra is not None) is tells for group in frames.groups)


PICKY = SceneOptions(scan=ScanMode.KEYFRAMES, keyframes=KeyframeRule(most_refined=0.3))
"""Options whose keyframe pass stops early on ``SCENES`` in one-second groups (above)."""


def test_a_file_cut_short_after_the_keyframe_pass_stopped_is_reported_as_incomplete(
    coded_video: VideoFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    made = coded_video(SCENES, grain=6, gop=25, extra_args=("-movflags", "+faststart"))
    data = made.path.read_bytes()
    path = tmp_path / "cut-short.mp4"
    path.write_bytes(data[: len(data) * 7 // 10])  # the index in front promises all of it

    for options in (FULL, PICKY):
        with (
            caplog.at_level(logging.INFO, logger="app.pipeline.scan"),
            pytest.raises(VideoIncomplete, match="incomplete"),
        ):
            scan(path, options)
    assert "pass stops there" in caplog.text


def test_a_video_with_a_longer_audio_track_ends_where_its_frames_end(
    coded_video: VideoFactory, tmp_path: Path
) -> None:
    made = coded_video(SCENES, grain=6, gop=25)
    path = with_audio_track(made.path, tmp_path / "longer-audio.mkv", made.duration + 3)
    full = scan(path, FULL)
    assert full[-1][1] == pytest.approx(made.duration, abs=0.05)
    assert scan(path, PICKY) == full


def test_the_longest_video_accepted_holds_after_the_keyframe_pass_stopped(
    coded_video: VideoFactory,
) -> None:
    made = coded_video(SCENES, grain=6, gop=25)
    listed: list[float] = []
    with pytest.raises(VideoTooLong, match="15 s"):
        for found in list_scenes(made.path, PICKY, 1.0, max_duration=15.0):
            listed.append(found.scene.start)
    # The pass stopped within its first seconds; the decoding after it is held to the limit.
    assert listed
    assert max(listed) <= 15.0


def test_a_grabbed_frame_inside_a_long_run_of_skipped_frames_is_the_one_on_screen(
    coded_video: VideoFactory,
) -> None:
    # Eight B-frames after every keyframe and P-frame, none referred to: a reader skipping
    # non-reference frames meets a run longer than it allows and decodes every frame from
    # there on, but the frames of that first run are gone by then.
    made = coded_video(
        SCENES[:2], extra_args=("-bf", "8", "-b_strategy", "0", "-b-pyramid", "none")
    )
    with VideoReader(made.path, skip_nonref=True) as reader:
        grab = scan_module.FrameGrab(reader, Scene(index=0, start=0.0, end=2.4), 0.16, True)
        grabbed = grab()
        assert grabbed.skipped and grabbed.met_long_run
        chosen = grab.settle(grabbed)
        assert chosen is not None
        time, frame = chosen
        assert time == pytest.approx(0.16)
        assert decode_frame_number(np.asarray(frame.to_image())) == 4
        # Taken, it tells the grabs after it to decode every frame, as one reader would.
        assert not reader.asides_skip
        assert not scan_module.FrameGrab(
            reader, Scene(index=1, start=2.4, end=4.0), 0.16, True
        )().skipped


def test_a_grab_skips_as_the_scans_reader_did_at_its_target(coded_video: VideoFactory) -> None:
    made = coded_video(SCENES[:2])
    with VideoReader(made.path, skip_nonref=True) as reader:
        # Its read-ahead met a long run of non-reference frames at 1.0 s before the scenes
        # ending before it were handed out: they were still scanned skipping them.
        reader._decode_every_frame(gap=0.4, at=1.0)
        before = scan_module._to_grab(reader, Scene(index=0, start=0.0, end=0.9), 0.5)
        after = scan_module._to_grab(reader, Scene(index=1, start=0.9, end=2.4), 1.0)
    for found, skipping in ((before, True), (after, False)):
        assert isinstance(found._grab, scan_module.FrameGrab)
        assert found._grab.skipping is skipping
    with VideoReader(made.path) as reader:  # never skipping
        found = scan_module._to_grab(reader, Scene(index=0, start=0.0, end=0.9), 0.5)
        assert isinstance(found._grab, scan_module.FrameGrab)
        assert not found._grab.skipping


@dataclass(frozen=True)
class _MetALongRun(scan_module.FrameGrab):
    """A grab that, once released, says it met a long run of non-reference frames."""

    release: threading.Event = field(default_factory=threading.Event)

    def __call__(self) -> scan_module.Grabbed:
        assert self.release.wait(timeout=60)
        return scan_module.Grabbed(None, skipped=True, met_long_run=True)


@dataclass(frozen=True)
class _Noted(scan_module.FrameGrab):
    """The real grab, noting when it is done and on which thread."""

    done: threading.Event = field(default_factory=threading.Event)
    threads: list[str] = field(default_factory=list)

    def __call__(self) -> scan_module.Grabbed:
        grabbed = super().__call__()
        self.threads.append(threading.current_thread().name)
        self.done.set()
        return grabbed


def test_grabs_on_several_threads_choose_the_frames_of_one_reader_grabbing_in_order(
    coded_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a machine of 16 cores: the later scene's grab runs, skipping non-reference
    # frames, while the earlier one, which meets a long run of them, is still decoding.
    monkeypatch.setattr(video_module, "BACKGROUND_THREADS", 4)
    made = coded_video(
        SCENES[:2], extra_args=("-bf", "2", "-b_strategy", "0", "-b-pyramid", "none")
    )
    with VideoReader(made.path, skip_nonref=True) as reader:
        earlier = _MetALongRun(reader, Scene(index=0, start=0.0, end=0.1), 0.05, True)
        later = _Noted(reader, Scene(index=1, start=0.1, end=2.4), 0.1, True)
        scenes = [
            scan_module.ScannedScene(grab.scene, grab=grab, reader=reader)
            for grab in (earlier, later)
        ]
        for found in scenes:
            found.prefetch()
        assert later.done.wait(timeout=60)
        assert scenes[0].decoding  # the earlier grab is still held
        earlier.release.set()
        assert scenes[0].frame() is None
        chosen = scenes[1].frame()
    # Skipping, the frame at or before 0.2 s would be the P-frame at 0.12 s; one reader,
    # having met the long run first, decodes every frame: the B-frame at 0.2 s.
    assert chosen is not None
    assert chosen[0] == pytest.approx(0.2)
    assert later.threads[0].startswith("decode ")


def test_a_grab_that_skipped_is_decoded_again_once_an_earlier_one_met_a_long_run(
    coded_video: VideoFactory,
) -> None:
    # Two B-frames after every keyframe and P-frame, none referred to: skipping them, the
    # frame at or before 0.2 s is the P-frame at 0.12 s; decoding every frame, the B at 0.2.
    made = coded_video(
        SCENES[:2], extra_args=("-bf", "2", "-b_strategy", "0", "-b-pyramid", "none")
    )
    with VideoReader(made.path, skip_nonref=True) as reader:
        grab = scan_module.FrameGrab(reader, Scene(index=1, start=0.0, end=2.4), 0.2, True)
        grabbed = grab()  # as in the background, ahead of an earlier scene's grab
        assert grabbed.skipped and grabbed.frame is not None
        assert grabbed.frame[0] == pytest.approx(0.12)
        # The earlier grab, taken first, met a long run of non-reference frames.
        reader.asides_skip = False
        chosen = grab.settle(grabbed)
        assert chosen is not None
        assert chosen[0] == pytest.approx(0.2)


def test_a_frame_grabbed_in_the_background_is_the_one_grabbed_when_the_scene_came(
    coded_video: VideoFactory,
) -> None:
    # Two B-frames after every keyframe and P-frame, none referred to: skipping them, the
    # frame at or before 0.2 s is the P-frame at 0.12 s; decoding every frame, the B at 0.2.
    made = coded_video(
        SCENES[:2], extra_args=("-bf", "2", "-b_strategy", "0", "-b-pyramid", "none")
    )
    scene = Scene(index=0, start=0.0, end=2.4)
    times = []
    for background in (False, True):
        with VideoReader(made.path, skip_nonref=True) as reader:
            found = scan_module._to_grab(reader, scene, 0.2)
            if background:
                # The scan goes on, and its reader stops skipping, before the frame is
                # decoded: the grab still decodes as the reader did when the scene came.
                reader._decode_every_frame(gap=0.4, at=30.0)
                found.prefetch()
            chosen = found.frame()
            assert chosen is not None
            times.append(chosen[0])
    assert times[0] == pytest.approx(0.12)
    assert times == times[:1] * 2


def test_a_stopped_pass_plans_only_the_groups_it_saw_in_a_row() -> None:
    # The keyframe at 2.9 s gave no key frame (no look): the groups after it are not planned
    # on their own, or the one before it would never be decoded.
    groups = [
        GroupOfPictures(0.0, 1.3, intra=0),
        GroupOfPictures(1.3, 2.9, intra=0),
        GroupOfPictures(2.9, 4.1, intra=0),
        GroupOfPictures(4.1, 5.0, intra=0),
    ]
    looks = {time: _look(100.0, [100.0], [0.1]) for time in (0.0, 1.3, 4.1, 5.0)}

    steps, judged, _ = scan_module._seen_plan(groups, looks, SceneOptions())

    assert steps == [Stretch(0.0, 1.3, last=True)]
    assert judged == 0.0


@pytest.mark.parametrize(
    ("encoder", "scenecut", "clock"),
    [("libx264", 40, True), ("libx264", 0, False), ("libx265", 40, True)],
)
def test_the_keyframe_pass_tells_the_groups_the_encoder_ended_by_the_clock(
    tmp_path: Path, encoder: str, scenecut: int, clock: bool
) -> None:
    # No scene change in a test pattern: x264 and x265 key it every 50 frames (their
    # keyint), and say so in their options; with scene-cut detection off a group tells
    # nothing.
    params = f"keyint=50:min-keyint=5:scenecut={scenecut}"
    if encoder == "libx265":
        params += ":log-level=error"
    path = tmp_path / f"{encoder}-{scenecut}.mp4"
    frames = _keyframe_pass(path, 5, encoder, params)
    assert [round(group.start, 2) for group in frames.groups] == [0.0, 2.0, 4.0]
    # The last group ends with the stream, not on a keyframe.
    assert [group.clock for group in frames.groups] == [clock, clock, False]
    # Each group knows the size of the keyframe that ends it.
    assert [group.next_key_size for group in frames.groups] == [*_keyframe_sizes(path)[1:], None]
    # None of them was ended for a scene change: the clock's fill the interval.
    assert not any(group.scene_change for group in frames.groups)
    assert [group.interval_share for group in frames.groups] == [1.0 if clock else None] * 2 + [
        None
    ]


def _keyframe_sizes(path: Path) -> list[int]:
    """Sizes of the video's keyframe packets in order, from ffprobe."""
    rows = probe_video(path, "packet=size,flags")
    return [int(size) for size, flags, *_ in rows if flags.startswith("K")]


def _clock_groups(*, clock: bool, frames: int = 250) -> list[GroupOfPictures]:
    """A group from 3 s to 13 s of ``frames`` frames (its keyframe's and ``frames - 1``
    packets), ended by the clock or not, between two others."""
    return [
        GroupOfPictures(0.0, 3.0, intra=0),
        GroupOfPictures(3.0, 13.0, intra=0, sizes=(3000,) * (frames - 1), clock=clock),
        GroupOfPictures(13.0, 15.0, intra=0),
    ]


@pytest.mark.parametrize(
    ("clock", "difference", "colour", "brightness", "frames", "skipped"),
    [
        # Big Buck Bunny (x264): a shot whose keyframes 250 frames apart differ by 43, in
        # much the same colours: no cut in it.
        (True, 43.0, 0.62, 100.0, 250, True),
        # Keyframes that differ like a cut: a cut may fall on the clock's keyframe.
        (True, 43.0, 0.8, 100.0, 250, False),
        # A dark keyframe: a fade through black may hide in the group.
        (True, 43.0, 0.62, 10.0, 250, False),
        # A group ended early, by a scene change the encoder saw: decoded to judge it.
        (False, 43.0, 0.62, 100.0, 250, False),
        # A clock of 48 frames (a streaming encode): cuts fall on its keyframes too often.
        (True, 43.0, 0.62, 100.0, 48, False),
    ],
    ids=["clock", "cut-apart", "dark", "early", "short-clock"],
)
def test_a_group_ended_by_the_clock_without_intra_frames_is_skipped(
    clock: bool, difference: float, colour: float, brightness: float, frames: int, skipped: bool
) -> None:
    looks = {
        0.0: _look(100.0, [100.0, 100.2], [0.5, 0.6]),
        3.0: _look(brightness, [brightness, brightness], [0.8, 0.9]),
        13.0: _look(100.0, [100.1, 100.0], [0.7, 0.5]),
    }
    looks[0.0].difference, looks[0.0].colour_distance = 3.0, 0.05
    looks[3.0].difference, looks[3.0].colour_distance = difference, colour

    plan = plan_keyframe_scan(_clock_groups(clock=clock, frames=frames), looks, SceneOptions())

    decoded = any(isinstance(step, Stretch) and step.start <= 3.0 < step.end for step in plan)
    assert decoded is not skipped
    # The last group is always decoded.
    last = plan[-1]
    assert isinstance(last, Stretch) and last.last and last.start <= 13.0


def _histogram(grey: bool) -> np.ndarray:
    """A hue-saturation histogram (``colour_histogram``'s shape): every pixel grey, or spread
    over every hue and saturation."""
    histogram = np.zeros((16, 8), np.float32)
    if grey:
        histogram[:, 0] = 1 / 16
    else:
        histogram[:] = 1 / (16 * 8)
    return histogram


@pytest.mark.parametrize(
    ("grey", "skipped"), [(True, False), (False, True)], ids=["grey", "colour"]
)
def test_a_clock_group_between_grey_keyframes_unlike_each_other_is_decoded(
    grey: bool, skipped: bool
) -> None:
    # A black-and-white lightbox whose light is switched on a second into a group x264
    # ended by the clock: it coded the change as one of brightness, with no intra frame.
    # The keyframes differ past the cut threshold, and grey colours cannot tell a cut from
    # a change of light; in colour (Big Buck Bunny, a camera move) the same difference is
    # skipped.
    looks = {
        0.0: _look(117.0, [117.0, 117.2], [0.5, 0.6]),
        3.0: _look(117.8, [117.8, 117.9], [1.7, 1.6]),
        13.0: _look(169.1, [169.1, 169.0], [0.4, 0.4]),
    }
    for look in looks.values():
        look.histogram = _histogram(grey)
    looks[0.0].difference, looks[0.0].colour_distance = 3.0, 0.0
    looks[3.0].difference, looks[3.0].colour_distance = 28.9, 0.08

    plan = plan_keyframe_scan(_clock_groups(clock=True), looks, SceneOptions())

    decoded = any(isinstance(step, Stretch) and step.start <= 3.0 < step.end for step in plan)
    assert decoded is not skipped


@pytest.mark.parametrize("next_brightness", [100.0, 10.0], ids=["bright", "dark"])
def test_a_clock_group_with_a_scene_change_inside_may_stop_after_it(
    next_brightness: float,
) -> None:
    # x264 saw a scene change 0.8 s in and ended the group by the clock at 4 s (100 frames):
    # past that intra frame it saw none, so the stretch may stop early, and the next one
    # starts at the keyframe; not where the next keyframe is dark (a fade may lie before it).
    groups = [
        GroupOfPictures(0.0, 4.0, intra=1, last_intra=0.8, sizes=(3000,) * 99, clock=True),
        GroupOfPictures(4.0, 6.0, intra=0),
        GroupOfPictures(6.0, 7.0, intra=0),
    ]
    looks = {
        0.0: _look(100.0, [100.0, 100.2], [0.5, 0.6]),
        4.0: _look(next_brightness, [next_brightness] * 2, [0.8, 0.9]),
        6.0: _look(100.0, [100.1, 100.0], [0.7, 0.5]),
    }
    looks[0.0].difference, looks[0.0].colour_distance = 50.0, 0.4
    looks[4.0].difference, looks[4.0].colour_distance = 40.0, 0.5

    plan = plan_keyframe_scan(groups, looks, SceneOptions())

    if next_brightness >= KeyframeRule().dark:
        assert plan == [
            Stretch(0.0, 4.0, last=False, quiet_from=0.8),
            Stretch(4.0, 7.0, last=True),
        ]
        first = plan[0]
        assert isinstance(first, Stretch) and first.next_key is looks[4.0]
    else:
        assert plan == [Stretch(0.0, 7.0, last=True)]


def _shots(path: Path, shots: list[tuple[str, float]], *args: str, size: str = "160x120") -> Path:
    """Lavfi sources (name with its options, seconds) one after the other at 25 fps, encoded
    with x264 and ``args``."""
    sources = ";".join(
        f"{name}{':' if '=' in name else '='}r=25:s={size},trim=duration={seconds},"
        f"format=yuv420p[s{index}]"
        for index, (name, seconds) in enumerate(shots)
    )
    joined = "".join(f"[s{index}]" for index in range(len(shots)))
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-filter_complex",
         f"{sources};{joined}concat=n={len(shots)}:v=1:a=0", "-c:v", "libx264", *args,
         str(path)],
        check=True,
    )  # fmt: skip
    return path


def _two_shots(path: Path, first: str, second: str, then: str = "") -> Path:
    """Two lavfi sources one after the other (``then`` filters the second), 320x240 at 25
    fps, x264 keying scene changes and by the clock every 100 frames (4 s)."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
         f"{first}:r=25:s=320x240,format=yuv420p[a];"
         f"{second}:r=25:s=320x240{then},format=yuv420p[b];[a][b]concat=n=2:v=1:a=0",
         "-c:v", "libx264", "-pix_fmt", "yuv420p",
         "-x264-params", "keyint=100:min-keyint=25:scenecut=40", str(path)],
        check=True,
    )  # fmt: skip
    return path


def test_the_keyframe_scan_stops_decoding_where_the_encoder_saw_nothing_more(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A cut 0.8 s in, which x264 codes as an intra frame (too soon after the keyframe for
    # a new group), then a still picture up to its next keyframe, placed by the clock at 4 s.
    path = _two_shots(tmp_path / "quiet.mp4", "testsrc=d=0.8", "rgbtestsrc=d=5.2")
    with caplog.at_level(logging.INFO, logger="app.pipeline.scan"):
        fast = list(list_scenes(path, KEYFRAMES, 1.0))
    full = list(list_scenes(path, FULL, 1.0))

    assert [(s.scene.start, s.scene.end, s.frame_time) for s in fast] == [
        (s.scene.start, s.scene.end, s.frame_time) for s in full
    ]
    assert [round(s.scene.start, 2) for s in full] == [0.0, 0.8]
    [stopped] = [r.getMessage() for r in caplog.records if "no scene change after" in r.message]
    decoded_to = float(stopped.split("after ")[1].split(" s")[0])
    # Past the frame of the scene from 0.8 s (1.8 s), well before the keyframe at 4 s.
    assert 1.8 < decoded_to < 2.5


@pytest.mark.parametrize(
    ("recent", "colour", "quiet"),
    [
        # Still and bright, in the next keyframe's colours: nothing left to find.
        ([120.0, 120.4, 119.8, 120.1, 120.2], "same", True),
        # A dark frame: a fade through black may lie ahead.
        ([120.0, 60.0, 20.0, 60.0, 120.0], "same", False),
        # Brightening steadily, 10 a frame: a fade in.
        ([80.0, 90.0, 100.0, 110.0, 120.0], "same", False),
        # Colours a cut apart from the next keyframe's.
        ([120.0, 120.4, 119.8, 120.1, 120.2], "other", False),
    ],
    ids=["quiet", "dark", "fading", "colours"],
)
def test_the_rest_of_a_stretch_is_quiet_only_without_dark_fade_or_new_colours(
    recent: list[float], colour: str, quiet: bool
) -> None:
    small = np.zeros((36, 64, 3), np.uint8)
    small[:] = (40, 160, 40)  # green, BGR
    other = small.copy()
    other[:] = (200, 40, 40)  # blue
    following = KeyframeLook(120.0, colour_histogram(small if colour == "same" else other))
    stretch = Stretch(0.0, 4.0, last=False, quiet_from=0.8, next_key=following)

    assert scan_module._quiet(recent, small, stretch, KeyframeRule()) is quiet


def test_a_cut_on_the_clocks_keyframe_between_shots_that_differ_more_than_one_does(
    tmp_path: Path,
) -> None:
    # A picture mirrored, its hues turned a little: keyframes 70 apart
    # (``KeyframeRule.clock_threshold`` 54), colours 0.59 (``cut_colour`` 0.7). Real
    # footage: a film clip encoded by x264 veryfast with keyint 120 (PySceneDetect's
    # issue-134 clip), a cut on the keyframe 120 frames after the last, 71 and 0.54.
    path = _two_shots(tmp_path / "mirrored.mp4", "testsrc=d=4", "testsrc=d=2", ",hflip,hue=h=30")
    full = [round(s.scene.start, 2) for s in list_scenes(path, FULL, 1.0)]
    assert full == [0.0, 4.0]
    assert [round(s.scene.start, 2) for s in list_scenes(path, KEYFRAMES, 1.0)] == full


@pytest.mark.xfail(
    strict=True,
    reason="known miss: a cut exactly on a keyframe the encoder placed by the clock, between "
    "shots of the same colours (keyframes 47 and 0.06 apart here, under clock_threshold and "
    "clock_colour), after a group the keyframe scan skips "
    "(bench/results/keyframe-bound-2026-11-27.md)",
)
def test_a_cut_on_the_clocks_keyframe_between_shots_of_the_same_colours(tmp_path: Path) -> None:
    path = _two_shots(tmp_path / "mirrored.mp4", "rgbtestsrc=d=4", "rgbtestsrc=d=2", ",hflip")
    full = [round(s.scene.start, 2) for s in list_scenes(path, FULL, 1.0)]
    assert full == [0.0, 4.0]
    assert [round(s.scene.start, 2) for s in list_scenes(path, KEYFRAMES, 1.0)] == full


_TWO_SHOTS = (
    "testsrc=d=2:r=25:s=160x120,format=yuv420p[a];"
    "rgbtestsrc=d=2:r=25:s=160x120,format=yuv420p[b];[a][b]concat=n=2:v=1:a=0"
)
_UNGUIDED = {
    # MPEG-4 Part 2: the keyframe pass could only judge its groups by packet spikes.
    "mpeg4": (("-c:v", "mpeg4", "-g", "25"), "does not tell which frames"),
    # x264 with scene-cut detection off (a streaming encode): keyframes by the clock alone.
    "x264-clock": (
        ("-c:v", "libx264", "-g", "25", "-sc_threshold", "0"),
        "x264 placed its keyframes by the clock",
    ),
}


@pytest.mark.parametrize("always", [False, True], ids=["default", "never-hand-over"])
@pytest.mark.parametrize("encoding", list(_UNGUIDED))
def test_a_stream_whose_keyframes_cannot_guide_the_scan_goes_straight_to_the_full_scan(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    encoding: str,
    always: bool,
) -> None:
    args, reason = _UNGUIDED[encoding]
    path = tmp_path / f"{encoding}.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", _TWO_SHOTS, *args, str(path)],
        check=True,
    )
    passes: list[Path] = []
    keyframes = VideoReader.keyframes

    def counted(reader: VideoReader) -> KeyframePass:
        passes.append(reader.path)
        return keyframes(reader)

    monkeypatch.setattr(VideoReader, "keyframes", counted)
    options = SceneOptions(
        scan=ScanMode.KEYFRAMES, keyframes=KeyframeRule(most_refined=1.0 if always else 0.7)
    )
    with caplog.at_level(logging.INFO, logger="app.pipeline.scan"):
        fast = [(s.scene.start, s.scene.end, s.frame_time) for s in list_scenes(path, options, 1.0)]
    full = [(s.scene.start, s.scene.end, s.frame_time) for s in list_scenes(path, FULL, 1.0)]

    assert fast == full
    assert [round(start, 2) for start, _, _ in full] == [0.0, 2.0]
    # With ``most_refined`` 1 the keyframe path is kept whatever it costs (as the tests do).
    assert len(passes) == (1 if always else 0)
    assert (reason in caplog.text) is not always


_FOUR_SHOTS = ";".join(
    [f"{source}=d=1.5:r=25:s=160x120,format=yuv420p[{name}]" for name, source in
     zip("abcd", ["testsrc", "rgbtestsrc", "testsrc2", "smptebars"], strict=True)]
    + ["[a][b][c][d]concat=n=4:v=1:a=0"]
)  # fmt: skip


@pytest.mark.parametrize("says", [True, False], ids=["x264-says-so", "unsaid"])
def test_an_all_intra_video_gets_the_full_scan(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, says: bool
) -> None:
    # Every frame a keyframe: nothing to skip, and stretches of one frame too short for the
    # detectors (every cut was missed). x264 says so in its options; without them, the
    # keyframe pass sees it.
    path = tmp_path / "intra.mp4"
    unsaid = () if says else ("-bsf:v", "filter_units=remove_types=6")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", _FOUR_SHOTS,
         "-c:v", "libx264", "-g", "1", *unsaid, str(path)],
        check=True,
    )  # fmt: skip
    with VideoReader(path) as reader:
        assert (reader.encoder_settings is not None) is says

    def scenes(options: SceneOptions) -> list[tuple[float, float, float | None]]:
        return [(s.scene.start, s.scene.end, s.frame_time) for s in list_scenes(path, options, 1.0)]

    with caplog.at_level(logging.INFO, logger="app.pipeline.scan"):
        fast = scenes(KEYFRAMES)
    full = scenes(FULL)
    starts = [start for start, _, _ in full]
    assert starts == pytest.approx([0.0, 1.5, 3.0, 4.5], abs=2 / 25)
    assert fast == full
    assert "every frame is scanned" in caplog.text


@pytest.mark.parametrize(
    ("name", "seek", "encode"),
    [
        # Cut from a longer film at no keyframe, without re-encoding: its first packets are
        # shown 1.5 s before zero (an edit list drops them).
        ("trimmed.mp4", ("-ss", "1.5"), ("-c", "copy")),
        # A slide show at 2 frames a second with B-frames: packets come 1.5 s before others
        # in decoding order.
        ("slides.mp4", (), ("-vf", "fps=2", "-c:v", "libx264", "-bf", "3")),
    ],
)
def test_timestamps_out_of_order_as_they_should_be_are_no_jump(
    tmp_path: Path, name: str, seek: tuple[str, ...], encode: tuple[str, ...]
) -> None:
    source = tmp_path / "source.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
         _FOUR_SHOTS.replace("d=1.5", "d=4"), "-c:v", "libx264", "-g", "48", str(source)],
        check=True,
    )  # fmt: skip
    path = tmp_path / name
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", *seek, "-i", str(source), *encode, str(path)],
        check=True,
    )
    full = [(s.scene.start, s.scene.end, s.frame_time) for s in list_scenes(path, FULL, 1.0)]
    assert len(full) >= 3
    fast = [(s.scene.start, s.scene.end, s.frame_time) for s in list_scenes(path, KEYFRAMES, 1.0)]
    assert fast == full


def _plan(
    steps: list[Stretch | KeyframeCut], end: float, groups: Sequence[GroupOfPictures] = ()
) -> scan_module.KeyframePlan:
    """A plan of ``steps``, as if a keyframe pass that saw ``groups`` had made it."""
    return scan_module.KeyframePlan(steps, end, stopped=False, groups=list(groups), looks={})


def _follow(
    path: Path,
    steps: list[Stretch | KeyframeCut],
    *,
    skip_nonref: bool = False,
    groups: Sequence[GroupOfPictures] = (),
) -> list[tuple[float, float, float, int]]:
    """The scenes of a keyframe scan that follows ``steps`` (as if a pass that saw ``groups``
    planned them)."""
    with VideoReader(path, skip_nonref=skip_nonref) as reader:
        end = reader.info.duration
        assert end is not None
        scenes = scan_module._follow(
            reader, KEYFRAMES, 1.0, _plan(steps, end, groups), end, threading.Event(),
            lambda _: None,
        )  # fmt: skip
        return _listed(scenes)


@pytest.mark.parametrize(
    "timing",
    [
        # A still picture's repeats left out, 16 frames of every 60.
        "select='not(between(mod(n,60),20,35))'",
        # Frames 33 and 47 ms long by turns, as a phone's camera gives them.
        "setpts='(N*40+if(mod(N,2),0,-7))/1000/TB'",
        # 30 frames a second for 5 s, then 24.
        "setpts='if(lt(N,150),N/30,5+(N-150)/24)/TB'",
    ],
    ids=["dropped", "jittered", "rate-change"],
)
def test_the_keyframe_scan_of_a_variable_frame_rate_video_finds_the_full_scans_scenes(
    coded_video: VideoFactory, timing: str
) -> None:
    made = coded_video(
        [*SCENES[:7], ("red", 60)],
        grain=8,
        scenecut=True,
        extra_args=(
            "-preset",
            "medium",
            "-vf",
            timing,
            "-fps_mode",
            "vfr",
            "-enc_time_base",
            "1/1000",
        ),
    )
    with VideoReader(made.path) as reader:
        times = [decoded.time for decoded in reader.frames()]
    assert len({round(b - a, 3) for a, b in itertools.pairwise(times)}) > 1
    full = scan(made.path, FULL)
    assert len(full) == 8
    assert scan(made.path, KEYFRAMES) == full


def test_stretches_decoded_at_once_find_what_one_after_another_finds(
    coded_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Noise strong enough that x264 keys a group every second or so, each ended for a scene
    # change: the plan decodes three stretches between clean cuts.
    made = coded_video(SCENES, grain=8, scenecut=True, extra_args=("-preset", "medium"))
    monkeypatch.setattr(scan_module, "STRETCHES_AHEAD", 0)
    one_by_one = scan(made.path, KEYFRAMES)
    # As on a machine of 16 cores: four stretches decoded at once, the first two together
    # for sure (they wait for each other), each not knowing how the scenes before it ended.
    monkeypatch.setattr(video_module, "PARALLEL_DECODES", 4)
    monkeypatch.setattr(scan_module, "STRETCHES_AHEAD", 5)
    together = threading.Barrier(2, timeout=60)
    calls = itertools.count()
    decode = scan_module._StretchDecode._decode

    def decode_together(self: scan_module._StretchDecode, reader: VideoReader) -> None:
        if next(calls) < 2:
            together.wait()
        decode(self, reader)

    monkeypatch.setattr(scan_module._StretchDecode, "_decode", decode_together)
    assert scan(made.path, KEYFRAMES) == one_by_one
    assert next(calls) > 2
    assert len(one_by_one) >= len(SCENES) - 1


def _decodes(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The starts of the stretches decoded, a decode at a time, as they begin."""
    starts: list[float] = []
    decode = scan_module._StretchDecode._decode

    def counted(self: scan_module._StretchDecode, reader: VideoReader) -> None:
        starts.append(self.planned.start)
        decode(self, reader)

    monkeypatch.setattr(scan_module._StretchDecode, "_decode", counted)
    return starts


def test_the_first_stretches_are_decoded_while_the_keyframe_pass_goes_on(
    coded_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = coded_video(SCENES, grain=8, scenecut=True, extra_args=("-preset", "medium"))
    monkeypatch.setattr(scan_module, "STRETCHES_AHEAD", 0)
    one_by_one = scan(made.path, KEYFRAMES)
    monkeypatch.setattr(scan_module, "STRETCHES_AHEAD", 2)
    starts = _decodes(monkeypatch)
    # The pass does not end before a stretch has begun: one started once the pass had seen
    # its groups and the keyframe after them.
    iterate = KeyframePass.__iter__
    started = threading.Event()
    decode = scan_module._StretchDecode._decode

    def noted(self: scan_module._StretchDecode, reader: VideoReader) -> None:
        started.set()
        decode(self, reader)

    def waiting(self: KeyframePass) -> Iterator[DecodedFrame]:
        yield from iterate(self)
        assert started.wait(timeout=60), "no stretch began before the keyframe pass ended"

    monkeypatch.setattr(scan_module._StretchDecode, "_decode", noted)
    monkeypatch.setattr(KeyframePass, "__iter__", waiting)
    monkeypatch.setattr(scan_module, "EARLY_START", True)  # as from four cores
    assert scan(made.path, KEYFRAMES) == one_by_one
    # Each decoded once: those started during the pass were the plan's.
    assert len(starts) >= 2
    assert len(set(starts)) == len(starts)


def _windows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many groups each planning of the first steps during the keyframe pass looks at
    (``KeyframePass.groups_so_far`` called by ``_EarlyStretches.seen``)."""
    sizes: list[int] = []
    planning = threading.Event()
    groups_so_far, seen = KeyframePass.groups_so_far, scan_module._EarlyStretches.seen

    def counted(self: KeyframePass, since: float | None = None) -> list[GroupOfPictures]:
        found = groups_so_far(self, since)
        if planning.is_set():
            sizes.append(len(found))
        return found

    def noted(self: scan_module._EarlyStretches, *args: Any) -> None:
        planning.set()
        try:
            seen(self, *args)
        finally:
            planning.clear()

    monkeypatch.setattr(KeyframePass, "groups_so_far", counted)
    monkeypatch.setattr(scan_module._EarlyStretches, "seen", noted)
    monkeypatch.setattr(scan_module, "EARLY_START", True)
    return sizes


def test_planning_during_the_pass_looks_only_at_the_groups_since_the_last_it_settled(
    coded_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A still shot keyed every second, every group skipped: each keyframe plans the
    # groups since the last, not every group seen so far (which took 84 s over 3,000).
    made = coded_video([("red", 1000)], grain=4, gop=25)
    sizes = _windows(monkeypatch)
    assert len(scan(made.path, KEYFRAMES)) == 1
    assert len(sizes) >= 30
    assert max(sizes) <= 3


def test_planning_during_the_pass_gives_up_on_a_stretch_that_does_not_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dark shot keyed every second: every group is decoded (a shot may fade in and out
    # between dark keyframes), all one stretch, left open to the end.
    path = _shots(tmp_path / "dark.mp4", [("color=c=0x0c0c0c", 16)], "-g", "25")
    sizes = _windows(monkeypatch)
    monkeypatch.setattr(scan_module, "_EARLY_WINDOW", 4)
    with VideoReader(path) as reader:
        plan = scan_module.look_at_keyframes(
            reader, KEYFRAMES, threading.Event(), lambda _: None,
            scan_module._EarlyStretches(
                scan_module._Stretches(reader, KEYFRAMES, 1.0, threading.Event()), KEYFRAMES
            ),
        )  # fmt: skip
    assert plan is not None
    assert len(plan.groups) >= 10
    assert [type(step) for step in plan.steps] == [Stretch]
    assert sizes
    assert max(sizes) <= 5


def test_a_stretch_started_during_the_pass_that_the_plan_does_not_begin_with_is_dropped(
    coded_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = coded_video([("red", 50), ("green", 50), ("blue", 50), ("yellow", 50)])
    final: list[Stretch | KeyframeCut] = [
        Stretch(0.0, 2.1, last=False),
        KeyframeCut(4.0),
        KeyframeCut(6.0),
        Stretch(6.0, made.duration, last=True),
    ]
    expected = _follow(made.path, final)
    starts = _decodes(monkeypatch)
    with VideoReader(made.path) as reader:
        stop = threading.Event()
        stretches = scan_module._Stretches(reader, KEYFRAMES, 1.0, stop)
        # As settled while the pass went on: the group from 4 s decoded fully, where the
        # plan as a whole takes a cut on the keyframe at 6 s.
        assert stretches.early([Stretch(0.0, 2.1, last=False), KeyframeCut(4.0)])
        assert stretches.early(
            [Stretch(0.0, 2.1, last=False), KeyframeCut(4.0), Stretch(4.0, 6.0, last=False)]
        )
        scenes = scan_module._follow(
            reader, KEYFRAMES, 1.0, _plan(final, made.duration), made.duration, stop,
            lambda _: None, stretches,
        )  # fmt: skip
        assert _listed(scenes) == expected
    # The first stretch decoded once, the one the plan does not have dropped (or never
    # begun), the last decoded.
    assert starts.count(0.0) == 1
    assert starts.count(6.0) == 1


def _grab_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    """The bounds of the scenes whose frames are decoded, a grab at a time, as they are."""
    calls: list[tuple[float, float]] = []
    grab = scan_module.FrameGrab.__call__

    def counted(self: scan_module.FrameGrab) -> scan_module.Grabbed:
        calls.append((self.scene.start, self.scene.end))
        return grab(self)

    monkeypatch.setattr(scan_module.FrameGrab, "__call__", counted)
    return calls


def test_frames_between_cuts_on_keyframes_are_grabbed_while_a_stretch_decodes(
    coded_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = coded_video([("red", 50), ("green", 50), ("blue", 50), ("yellow", 50)])
    steps: list[Stretch | KeyframeCut] = [
        Stretch(0.0, 2.1, last=False),
        KeyframeCut(4.0),
        KeyframeCut(6.0),
        Stretch(6.0, made.duration, last=True),
    ]
    calls = _grab_calls(monkeypatch)
    monkeypatch.setattr(scan_module, "GRABS_AHEAD", 0)
    one_by_one = _follow(made.path, steps)
    assert calls == [(2.0, 4.0), (4.0, 6.0)]
    calls.clear()
    # The first stretch goes on only once the frame of the scene from 4 s to 6 s, which
    # no stretch decodes, has been grabbed: ahead of the scene, beside the stretch.
    monkeypatch.setattr(scan_module, "GRABS_AHEAD", 4)
    grabbed = threading.Event()
    grab, decode = scan_module.FrameGrab.__call__, scan_module._StretchDecode._decode

    def noted(self: scan_module.FrameGrab) -> scan_module.Grabbed:
        try:
            return grab(self)
        finally:
            if self.scene.start == 4.0:
                grabbed.set()

    def after_the_grab(self: scan_module._StretchDecode, reader: VideoReader) -> None:
        if self.planned.start == 0.0:
            assert grabbed.wait(timeout=60)
        decode(self, reader)

    monkeypatch.setattr(scan_module.FrameGrab, "__call__", noted)
    monkeypatch.setattr(scan_module._StretchDecode, "_decode", after_the_grab)
    assert _follow(made.path, steps) == one_by_one
    # Each frame decoded once: the scene came as its grab had assumed.
    assert sorted(calls) == [(2.0, 4.0), (4.0, 6.0)]
    assert [number for *_, number in one_by_one] == [25, 75, 125, 175]


def test_a_frame_grabbed_ahead_for_a_scene_that_did_not_come_is_not_taken(
    coded_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The plan's cut on the keyframe at 2.32 s comes 0.32 s after the one at 2.0 s: closer
    # than min_scene_len, it is not taken, and the scene from 2.0 s to 2.32 s whose frame
    # was grabbed ahead (its middle, 2.16 s) does not come; the one from 2.0 s to 4.72 s
    # does, its frame at 3.0 s.
    made = coded_video([("red", 50), ("green", 8), ("blue", 60), ("yellow", 50)])
    steps: list[Stretch | KeyframeCut] = [
        Stretch(0.0, 1.5, last=False),
        KeyframeCut(2.0),
        KeyframeCut(2.32),
        KeyframeCut(4.72),
        Stretch(4.72, made.duration, last=True),
    ]
    calls = _grab_calls(monkeypatch)
    grabbed = threading.Event()
    grab, decode = scan_module.FrameGrab.__call__, scan_module._StretchDecode._decode

    def noted(self: scan_module.FrameGrab) -> scan_module.Grabbed:
        try:
            return grab(self)
        finally:
            grabbed.set()

    def after_a_grab(self: scan_module._StretchDecode, reader: VideoReader) -> None:
        if self.planned.start == 0.0:
            assert grabbed.wait(timeout=60)
        decode(self, reader)

    monkeypatch.setattr(scan_module.FrameGrab, "__call__", noted)
    monkeypatch.setattr(scan_module._StretchDecode, "_decode", after_a_grab)
    found = _follow(made.path, steps)
    assert calls[0] == (2.0, pytest.approx(2.32))
    assert [(start, end, number) for start, end, _, number in found] == [
        (0.0, pytest.approx(2.0), 25),
        (pytest.approx(2.0), pytest.approx(4.72), 75),
        (pytest.approx(4.72), pytest.approx(made.duration), 143),
    ]


def test_a_stretch_decoded_before_the_last_cut_was_known_is_decoded_again(
    coded_video: VideoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # A cut at 2.0 s, found by the first stretch, and one 0.32 s later, closer than
    # min_scene_len: the second stretch, started before the first found its cut, would take
    # the second cut for one.
    made = coded_video([("red", 50), ("green", 8), ("blue", 60)])
    steps: list[Stretch | KeyframeCut] = [
        Stretch(0.0, 2.1, last=False),
        Stretch(2.12, made.duration, last=True),
    ]
    with caplog.at_level(logging.DEBUG, logger="app.pipeline.scan"):
        found = _follow(made.path, steps)
    assert "decoded for other scenes before it; again" in caplog.text
    assert [(start, end) for start, end, _, _ in found] == [
        (0.0, pytest.approx(2.0)),
        (pytest.approx(2.0), pytest.approx(made.duration)),
    ]
    assert [number for *_, number in found] == [25, 75]


@pytest.mark.parametrize(
    ("opening", "intra", "handed_over"),
    [
        ("cut", 0, True),
        ("cut", 1, False),
        # A cut to black is as abrupt as any.
        ("cut-to-black", 0, True),
        # Encoders key no fade, seeing no single frame change much.
        ("fade-through-black", 0, False),
    ],
)
# Non-reference frames skipped (as by default) or not: a fade's steps between the frames
# decoded are then twice as big.
@pytest.mark.parametrize("skip_nonref", [False, True], ids=["every-frame", "skipping"])
def test_a_cut_the_encoder_did_not_key_has_the_rest_decoded(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    opening: str,
    intra: int,
    handed_over: bool,
    skip_nonref: bool,
) -> None:
    # Keyframes every 2 s, cuts at 3 and 5 s after the opening's at 1 s. The plan decodes
    # the first group, takes the keyframe at 4 s for the cut that ends the second (its
    # keyframes differ like one, and the encoder said it coded no intra frame in it) and
    # decodes the rest. The first stretch finds a hard cut at 1 s inside a group the
    # encoder coded without an intra frame: it did not key every scene change (as x265
    # keyed 14 of a trailer's 29 cuts), and the second group is decoded too. Where it had
    # coded an intra frame there, or the picture faded, the plan holds.
    first, second = {
        "cut": ("", ""),
        "cut-to-black": (",fade=t=out:st=0.8:d=0.04", ",fade=t=in:st=0:d=0.5"),
        "fade-through-black": (",fade=t=out:st=0.5:d=0.5", ",fade=t=in:st=0:d=0.5"),
    }[opening]
    path = tmp_path / f"{opening}.mp4"
    # Colours of different brightness (``_abrupt`` compares grey levels).
    shots = [("red", 1, first), ("white", 2, second), ("blue", 2, ""), ("gray", 3, "")]
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-filter_complex",
         "".join(f"color=c={colour}:r=25:s=160x120:d={seconds}{then}[s{index}];"
                 for index, (colour, seconds, then) in enumerate(shots))
         + "[s0][s1][s2][s3]concat=n=4:v=1:a=0,format=yuv420p",
         "-c:v", "libx264", "-g", "50", "-x264-params", "scenecut=0", str(path)],
        check=True,
    )  # fmt: skip
    groups = [
        GroupOfPictures(0.0, 2.0, intra=intra),
        GroupOfPictures(2.0, 4.0, intra=0),
        GroupOfPictures(4.0, 8.0, intra=0),
    ]
    steps: list[Stretch | KeyframeCut] = [
        Stretch(0.0, 2.0, last=False),
        KeyframeCut(4.0),
        Stretch(4.0, 8.0, last=True),
    ]
    with caplog.at_level(logging.INFO, logger="app.pipeline.scan"):
        found = _follow(path, steps, groups=groups, skip_nonref=skip_nonref)
    starts = [round(start, 2) for start, *_ in found]
    assert 0.8 <= starts[1] <= 1.2
    # Skipping puts the cuts on the next frame decoded.
    assert starts[2:] == pytest.approx([3.0 if handed_over else 4.0, 5.0], abs=0.05)
    assert ("it did not key every scene change" in caplog.text) is handed_over


def test_a_cut_is_abrupt_only_where_its_frames_are_still_at_hand() -> None:
    # Sixteen frames at 25 fps, black until 0.4 s, white from there: the change at 0.4 s is
    # abrupt; a cut before the first frame kept cannot be judged, and is not taken for one.
    black, white = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8)
    frames = [(index / 25, black if index < 10 else white) for index in range(16)]
    assert scan_module._abrupt(0.4, frames, 27.0, 25.0)
    assert not scan_module._abrupt(0.2, frames, 27.0, 25.0)
    assert not scan_module._abrupt(0.2, frames[9:], 27.0, 25.0)
    # Five frame durations apart, the same change is a fifth as steep.
    assert not scan_module._abrupt(0.4, [frames[8], frames[13], frames[14]], 60.0, 25.0)


@pytest.mark.parametrize(
    ("rest", "decoded"),
    [
        ([Stretch(2.0, 4.0, last=False), Stretch(4.0, 8.0, last=True)], True),
        ([Stretch(2.0, 4.0, last=False), Stretch(5.0, 8.0, last=True)], False),
        ([Stretch(2.0, 4.0, last=False), KeyframeCut(6.0), Stretch(6.0, 8.0, last=True)], False),
        ([Stretch(2.0, 4.0, last=False, quiet_from=3.0), Stretch(4.0, 8.0, last=True)], False),
        ([Stretch(2.0, 4.0, last=False)], False),
    ],
    ids=["all", "a-gap", "a-keyframe-cut", "one-that-stops-when-quiet", "not-to-the-end"],
)
def test_the_rest_of_a_plan_decodes_every_frame_only_without_gaps(
    rest: list[Stretch | KeyframeCut], decoded: bool
) -> None:
    assert scan_module._decodes_on(rest, 2.0) is decoded


@pytest.mark.parametrize(
    "first",
    [Stretch(0.0, 1.0, last=False), Stretch(1.0, 1.04, last=False)],
    ids=["met-inside", "met-on-the-frame-after-it"],
)
def test_a_stretch_decoded_skipping_after_an_earlier_one_stopped_is_decoded_again(
    coded_video: VideoFactory, first: Stretch
) -> None:
    # Eight B-frames after every keyframe and P-frame, none referred to: the first stretch
    # meets a run longer than a reader skips and stops skipping (inside it, or on the frame
    # after its end, decoded but not its own). The second, started skipping meanwhile, would
    # miss the cut at 2.2 s among such frames and put it at the P-frame after them (2.36 s).
    made = coded_video(
        [("red", 55), ("green", 52), ("blue", 70)],
        gop=25,
        extra_args=("-bf", "8", "-b_strategy", "0", "-b-pyramid", "none"),
    )
    steps: list[Stretch | KeyframeCut] = [first, Stretch(2.0, made.duration, last=True)]
    found = _follow(made.path, steps, skip_nonref=True)
    assert [round(start, 2) for start, *_ in found] == [0.0, 2.2, 4.28]


class _Gate:
    """Holds a stretch's decode at the first frame past ``at`` seconds until ``open``, and
    notes the frames it decodes (``_DecodedRun.push``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, at: float) -> None:
        self.open = threading.Event()
        self.times: list[float] = []
        self.passed: dict[float, threading.Event] = {}
        push = scan_module._DecodedRun.push

        def gated(run: scan_module._DecodedRun, decoded: DecodedFrame) -> None:
            if decoded.time > at:
                assert self.open.wait(timeout=60)
            self.times.append(decoded.time)
            for time, event in self.passed.items():
                if decoded.time > time:
                    event.set()
            push(run, decoded)

        monkeypatch.setattr(scan_module._DecodedRun, "push", gated)

    def past(self, time: float) -> threading.Event:
        """Set once the decode has gone past ``time``."""
        return self.passed.setdefault(time, threading.Event())


def test_the_scenes_before_a_video_too_long_are_handed_out_first(
    coded_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Cuts at 2 s and 4 s; the longest video accepted is 4.5 s. The decode runs on to 6 s
    # while the caller holds the first scene; the second, confirmed at 4.08 s, comes first.
    made = coded_video([("red", 50), ("green", 50), ("blue", 150)])
    gate = _Gate(monkeypatch, at=2.2)
    beyond = gate.past(6.0)

    def reached(time: float) -> None:
        if time > 4.5:
            raise VideoTooLong(f"past 4.5 s: {time:.2f} s")

    taken: list[tuple[float, float]] = []
    with VideoReader(made.path) as reader:
        scenes = scan_module._follow(
            reader, KEYFRAMES, 1.0, _plan([Stretch(0.0, 10.0, last=True)], 10.0), 10.0,
            threading.Event(),
            reached,
        )  # fmt: skip
        with pytest.raises(VideoTooLong):
            for found in scenes:
                taken.append((found.scene.start, found.scene.end))
                if len(taken) == 1:
                    gate.open.set()
                    assert beyond.wait(timeout=60)
    assert taken == [(0.0, pytest.approx(2.0)), (pytest.approx(2.0), pytest.approx(4.0))]


def test_a_scan_closed_early_stops_the_stretch_it_was_handing_out(
    coded_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = coded_video([("red", 50), ("green", 50), ("blue", 150)])
    gate = _Gate(monkeypatch, at=3.0)
    with VideoReader(made.path) as reader:
        scenes = scan_module._follow(
            reader, KEYFRAMES, 1.0, _plan([Stretch(0.0, 10.0, last=True)], 10.0), 10.0,
            threading.Event(),
            lambda _: None,
        )  # fmt: skip
        first = next(scenes)
        assert first.scene.end == pytest.approx(2.0)
        scenes.close()
        gate.open.set()
    # It decoded the frame it was held at, not the 7 s after it.
    assert max(gate.times) < 3.1


@pytest.mark.parametrize("kept", [2, None], ids=["two-fit", "all-fit"])
def test_a_stretch_ahead_of_its_caller_keeps_the_frames_that_fit(
    coded_video: VideoFactory, monkeypatch: pytest.MonkeyPatch, kept: int | None
) -> None:
    # Ten scenes of 0.8 s; the caller holds the first until the decode is done. It kept the
    # frames of the scenes waiting that fit (two; or all nine, 115 kB each, in the default
    # budget); the others are decoded again, the same frames.
    made = coded_video([(colour, 20) for colour in ("red", "green", "blue", "yellow", "cyan")] * 2)
    if kept is not None:
        monkeypatch.setattr(scan_module, "_frames_kept", lambda _: kept)
    started: list[scan_module._StretchDecode] = []
    init = scan_module._StretchDecode.__init__

    def noted(decode: scan_module._StretchDecode, *args: Any, **kwargs: Any) -> None:
        init(decode, *args, **kwargs)
        started.append(decode)

    monkeypatch.setattr(scan_module._StretchDecode, "__init__", noted)
    steps: list[Stretch | KeyframeCut] = [Stretch(0.0, made.duration, last=True)]
    with VideoReader(made.path) as reader:
        scenes = scan_module._follow(
            reader, KEYFRAMES, 1.0, _plan(steps, made.duration), made.duration,
            threading.Event(), lambda _: None,
        )  # fmt: skip
        first = next(scenes)
        [decode] = started
        decode.outcome()  # done
        fit = 9 if kept is None else kept
        assert [cut.frame is not None for cut in decode.cuts] == [True] * fit + [False] * (9 - fit)
        held = _listed(itertools.chain([first], scenes))
    assert held == _follow(made.path, steps)
    assert len(held) == 10


def test_a_reader_closed_under_a_scan_left_open_stops_its_stretches(
    coded_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A caller that fails while it holds a scene leaves the scan open: the reader closes
    # while its stretch is still decoding (held here past 1 s until the reader closes).
    made = coded_video([(colour, 20) for colour in ("red", "green", "blue", "yellow", "cyan")] * 2)
    reader = VideoReader(made.path)
    times: list[float] = []
    push = scan_module._DecodedRun.push

    def held(run: scan_module._DecodedRun, decoded: DecodedFrame) -> None:
        if decoded.time > 1.0:
            assert reader._closing.wait(timeout=60)
        times.append(decoded.time)
        push(run, decoded)

    monkeypatch.setattr(scan_module._DecodedRun, "push", held)
    scenes = scan_module._follow(
        reader, KEYFRAMES, 1.0, _plan([Stretch(0.0, made.duration, last=True)], made.duration),
        made.duration, threading.Event(), lambda _: None,
    )  # fmt: skip
    next(scenes)
    reader.close()
    # It stopped at the frame after the one it was held at, not at the end (8 s).
    assert max(times) < 1.1
    scenes.close()


def _pattern_shots(path: Path, size: str, box: str = "") -> Path:
    """Colour bars for 4 s, then mirrored with their hues turned for 2 s (a cut), at ``size``
    and 25 fps, filtered by ``box`` after (bars added), x264 keying scene changes."""
    shots = (
        f"smptehdbars=d=4:r=25:s={size},format=yuv420p[a];"
        f"smptehdbars=d=2:r=25:s={size},hflip,hue=h=90,format=yuv420p[b];"
        f"[a][b]concat=n=2:v=1:a=0{box}"
    )
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-filter_complex", shots, "-c:v", "libx264",
         "-pix_fmt", "yuv420p", "-x264-params", "keyint=100:min-keyint=25:scenecut=40",
         str(path)],
        check=True,
    )  # fmt: skip
    return path


def _looks(path: Path) -> dict[float, KeyframeLook]:
    with VideoReader(path) as reader:
        plan = scan_module.look_at_keyframes(reader, KEYFRAMES, threading.Event(), lambda _: None)
    assert plan is not None
    return plan.looks


@pytest.mark.parametrize(
    ("size", "box"),
    [("320x136", ",pad=320:180:0:22"), ("240x180", ",pad=320:180:40:0")],
    ids=["letterbox", "pillarbox"],
)
def test_keyframes_inside_black_bars_are_compared_as_without_the_bars(
    tmp_path: Path, size: str, box: str
) -> None:
    # Bars a quarter of the frame, black in both keyframes of a cut: measured over the
    # whole frame, they take a quarter off the keyframes' content difference and put a
    # quarter of both colour histograms in the same bin (Big Buck Bunny letterboxed: a cut
    # 64.9 and 0.72 apart looked 50.3 and 0.63 apart, under ``cut_colour``, and was decoded).
    plain = _looks(_pattern_shots(tmp_path / "plain.mp4", size))
    boxed = _looks(_pattern_shots(tmp_path / "boxed.mp4", size, box))
    assert 0.0 in plain and 4.0 in plain and 4.0 in boxed
    cut_plain, cut_boxed = plain[0.0], boxed[0.0]
    assert cut_plain.difference is not None and cut_boxed.difference is not None
    assert cut_boxed.difference == pytest.approx(cut_plain.difference, rel=0.08)
    assert cut_plain.colour_distance is not None and cut_boxed.colour_distance is not None
    assert cut_boxed.colour_distance == pytest.approx(cut_plain.colour_distance, abs=0.04)
    # The fades detector's brightness stays the whole frame's, bars included.
    assert cut_boxed.brightness < 0.85 * cut_plain.brightness


def _boxed(picture: tuple[int, int, int], rows: tuple[int, int], width: int = 64) -> np.ndarray:
    """A 48-row small copy, black but for ``rows`` of a BGR colour with a lighter stripe
    (something for the motion to see)."""
    small = np.zeros((48, width, 3), np.uint8)
    small[rows[0] : rows[1]] = picture
    small[rows[0] : rows[1], :8] = 250
    return small


def test_a_keyframe_measured_before_the_bars_were_known_is_measured_again_inside_them() -> None:
    looking = scan_module._Looking(step=0.04)
    # A dark opening: only the middle of the picture lit; then the frames after it move.
    first = _boxed((40, 160, 40), (16, 32))
    moved = np.roll(first, 4, axis=1)
    assert looking.see(0.0, first, key=True)
    assert not looking.see(0.04, moved, key=False)
    # The next keyframe lights the whole picture, rows 8 to 40 of 48.
    second = _boxed((200, 40, 40), (8, 40))
    assert looking.see(2.0, second, key=True)

    before = looking.looks[0.0]
    assert before.area == looking.looks[2.0].area == PictureArea(8, 40)
    inside = before.area.crop
    assert before.difference == pytest.approx(content_difference(inside(first), inside(second)))
    assert before.motion == [pytest.approx(content_difference(inside(first), inside(moved)))]
    assert np.array_equal(before.histogram, colour_histogram(inside(first)))


def test_the_rest_of_a_stretch_is_compared_with_the_next_keyframe_inside_the_bars() -> None:
    # The next keyframe all green inside its bars; the stretch's last frame 41 % green and
    # 59 % blue there: colours 0.60 apart, under ``cut_colour``. Its bars, 42 % of the
    # frame, counted in it alone would put them 0.71 apart.
    area = PictureArea(10, 38)
    keyframe = np.zeros((48, 100, 3), np.uint8)
    keyframe[10:38] = (40, 160, 40)
    following = KeyframeLook(120.0, colour_histogram(area.crop(keyframe)), area=area)
    last = keyframe.copy()
    last[10:38, 41:] = (200, 40, 40)
    stretch = Stretch(0.0, 4.0, last=False, quiet_from=0.8, next_key=following)

    assert scan_module._quiet([120.0] * 5, last, stretch, KeyframeRule())
