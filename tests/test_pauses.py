"""The rule that places a description in a dialogue-free window of its scene."""

from __future__ import annotations

import threading

import pytest

from app.pipeline.pauses import PauseFinder, SpeechTrack, merge_intervals
from app.pipeline.types import Interval, Scene

SCENE = Scene(index=0, start=10.0, end=20.0)


def window(speech: list[tuple[float, float]] | None, scene: Scene = SCENE) -> Interval | None:
    intervals = None if speech is None else [Interval(a, b) for a, b in speech]
    return PauseFinder(intervals, min_gap=2.0).window(scene)


def test_without_speech_information_the_whole_scene_is_free() -> None:
    assert window(None) == Interval(10.0, 20.0)
    short = Scene(index=1, start=3.0, end=3.5)
    assert window(None, short) == Interval(3.0, 3.5)


def test_no_speech_in_scene_gives_whole_scene() -> None:
    assert window([(0.0, 9.0), (21.0, 25.0)]) == Interval(10.0, 20.0)


def test_speech_covering_the_scene_gives_nothing() -> None:
    assert window([(9.0, 21.0)]) is None


def test_earliest_long_enough_window_wins() -> None:
    # Free: 10-11 (too short), 12.5-15 (2.5 s), 16-20.
    assert window([(9.0, 11.0), (11.0, 12.5), (15.0, 16.0)]) == Interval(12.5, 15.0)


def test_window_starts_no_earlier_than_scene() -> None:
    # Speech ended at 5 s, before the scene: the window starts at the scene start.
    assert window([(0.0, 5.0), (13.0, 19.0)]) == Interval(10.0, 13.0)


def test_window_touching_scene_end_counts_up_to_the_boundary() -> None:
    assert window([(9.0, 18.0)]) == Interval(18.0, 20.0)
    assert window([(9.0, 18.5)]) is None


def test_gap_of_exactly_min_gap_is_used() -> None:
    assert window([(9.0, 12.0), (14.0, 21.0)]) == Interval(12.0, 14.0)


def test_gap_just_under_min_gap_is_not_used() -> None:
    assert window([(9.0, 12.0), (13.99, 21.0)]) is None


def test_overlapping_and_unsorted_subtitles_are_merged() -> None:
    speech = [(15.0, 19.5), (9.0, 12.0), (11.0, 13.5), (12.5, 14.0)]
    assert window(speech) is None  # 14-15 is 1 s, 19.5-20 is 0.5 s
    assert merge_intervals([Interval(a, b) for a, b in speech]) == [
        Interval(9.0, 14.0),
        Interval(15.0, 19.5),
    ]


def test_subtitles_past_the_video_end_do_not_matter() -> None:
    last = Scene(index=3, start=50.0, end=60.0)
    assert window([(55.0, 58.0), (70.0, 80.0)], last) == Interval(50.0, 55.0)


def test_empty_subtitle_list_means_no_speech() -> None:
    assert window([]) == Interval(10.0, 20.0)


def test_negative_min_gap_is_refused() -> None:
    with pytest.raises(ValueError, match="min_gap"):
        PauseFinder(None, min_gap=-1)


def test_a_track_filled_while_scanning_gives_the_same_windows() -> None:
    # Subtitles say 10-13 s; the audio adds 16-17 s later on.
    track = SpeechTrack([Interval(10.0, 13.0)])
    finder = PauseFinder(track, min_gap=2.0)
    stop = threading.Event()
    later = Scene(index=1, start=20.0, end=24.0)
    track.add([], known_until=15.0)
    stop.set()
    assert not finder.ready(SCENE, stop)  # the scene ends at 20 s: not known yet
    stop.clear()
    track.add([Interval(16.0, 17.0)], known_until=21.0)
    assert finder.ready(SCENE, stop)
    assert finder.window(SCENE) == Interval(13.0, 16.0)
    track.add([Interval(20.5, 22.0)], known_until=30.0)
    assert finder.ready(later, stop)
    assert finder.window(later) == Interval(22.0, 24.0)


def test_waiting_on_a_track_ends_with_stop_or_the_detector() -> None:
    stop = threading.Event()
    track = SpeechTrack()
    track.add([], known_until=5.0)
    assert track.wait(5.0, stop)
    stop.set()
    assert not track.wait(6.0, stop)  # stopped, not known
    stop.clear()
    track.finish(RuntimeError("decoder died at 7 s"))
    assert track.wait(5.0, stop)  # known before it failed
    with pytest.raises(RuntimeError, match="died at 7 s"):
        track.wait(8.0, stop)

    done = SpeechTrack()
    done.add([Interval(1.0, 2.0)], known_until=3.0)
    done.finish()  # the audio is shorter than the video: the rest has no speech
    assert done.wait(100.0, stop)
    assert done.snapshot()[1] == [Interval(1.0, 2.0)]


def test_a_waiting_scan_wakes_up_when_speech_arrives() -> None:
    track = SpeechTrack()
    stop = threading.Event()
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(track.wait(12.0, stop)))
    waiter.start()
    track.add([Interval(3.0, 4.0)], known_until=6.0)  # not far enough: still waiting
    track.add([], known_until=12.5)
    waiter.join(timeout=30)
    assert woke == [True]
