"""The benchmark scripts import: a rename in ``app`` that breaks one fails here, not on the
GPU machine they are carried to."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.fixtures.media import VideoFactory, raw_h264

SCRIPTS = sorted(p.stem for p in (Path(__file__).parents[1] / "bench").glob("*.py"))


@pytest.mark.parametrize("name", [s for s in SCRIPTS if s != "__init__"])
def test_bench_script_imports(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert module.__doc__, f"bench/{name}.py says what it measures in its docstring"


def test_keyframe_bound_decodes_only_groups_with_a_cut_inside() -> None:
    """The oracle of ``bench/keyframe_bound.py``: a cut on a keyframe costs nothing, cuts
    inside a group make one stretch from its keyframe, which goes on to a later scene frame
    in the group; scene frames in other groups are grabbed on their own."""
    from bench.keyframe_bound import plan

    oracle = plan(
        keyframes=[0.0, 4.0, 8.0],
        cuts=[4.0, 5.0, 6.0],
        frames=[1.0, 5.5, 7.0, 9.0],
        lookahead=0.08,
    )
    assert oracle.stretches == [(4.0, 7.0)]
    assert oracle.frames == [1.0, 9.0]
    assert (oracle.cuts_on_keyframes, oracle.cuts_inside) == (1, 2)

    alone = plan(keyframes=[0.0, 4.0], cuts=[5.0], frames=[4.5], lookahead=0.08)
    assert alone.stretches == [(4.0, 5.08)]
    assert alone.frames == []


def test_the_film_end_of_a_raw_stream_is_its_frames_at_its_rate(
    coded_video: VideoFactory, tmp_path: Path
) -> None:
    # An .h264 file has no timestamps: the bench's film end was max() of nothing (a crash).
    from bench.common import film_end

    made = coded_video([("red", 30), ("blue", 45)])
    raw = raw_h264(made.path, tmp_path / "raw.h264")
    assert film_end(raw) == pytest.approx(film_end(made.path)) == pytest.approx(3.0)


def test_keyframe_groups_marks_the_cut_a_skipped_clock_group_hides(tmp_path: Path) -> None:
    """``bench/keyframe_groups.py`` on the strict xfail's clip (tests/test_keyframe_scan.py):
    a cut exactly on the clock's keyframe between a picture and its mirror, which the plan
    skips, is marked as a miss; with the hues turned too, the group is decoded."""
    from bench.keyframe_groups import group_rows
    from tests.test_keyframe_scan import _two_shots

    skipped = group_rows(
        _two_shots(tmp_path / "mirrored.mp4", "rgbtestsrc=d=4", "rgbtestsrc=d=2", ",hflip")
    )
    assert [(row.start, row.clock, row.decision, row.cut_on_end) for row in skipped] == [
        (0.0, True, "skip", True),
        (4.0, False, "decode", False),
    ]
    assert [row.miss for row in skipped] == [True, False]

    decoded = group_rows(
        _two_shots(tmp_path / "hues.mp4", "testsrc=d=4", "testsrc=d=2", ",hflip,hue=h=30")
    )
    assert decoded[0].decision == "decode" and decoded[0].cut_on_end and not decoded[0].miss


def test_a_clip_joined_to_itself_holds_its_frames_again_and_its_scenes_again(
    coded_video: VideoFactory, tmp_path: Path
) -> None:
    # ``bench/scan_wall.py --join``: a long film from a short clip, packets copied.
    from app.pipeline.scan import list_scenes
    from app.pipeline.scenes import SceneOptions
    from bench.common import concatenate, count_packets, film_end

    made = coded_video([("red", 30), ("blue", 45)])
    joined = tmp_path / "joined.mp4"
    concatenate([made.path] * 3, joined)
    assert film_end(joined) == pytest.approx(3 * film_end(made.path))
    assert count_packets(joined) == 3 * count_packets(made.path)
    starts = [listed.scene.start for listed in list_scenes(joined, SceneOptions(), 1.0)]
    assert starts == pytest.approx([0.0, 1.2, 3.0, 4.2, 6.0, 7.2])
