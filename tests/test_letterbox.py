"""Black bars found from the keyframes' small copies (``app.pipeline.letterbox``)."""

from __future__ import annotations

import numpy as np

from app.pipeline.letterbox import WHOLE_FRAME, Bars, PictureArea


def _frame(lit: tuple[int, int, int, int], level: int = 120) -> np.ndarray:
    """A 144x256 BGR small copy, black but for rows ``lit[0]:lit[1]`` and columns
    ``lit[2]:lit[3]`` at ``level``, with a little noise in the black (as decoded)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 12, size=(144, 256, 3), dtype=np.uint8)
    top, bottom, left, right = lit
    small[top:bottom, left:right] = level
    return small


def test_a_letterboxed_frame_is_cropped_to_its_picture() -> None:
    area = Bars().see(_frame((18, 126, 0, 256)))
    assert area == PictureArea(18, 126, 0, None)
    assert area.crop(_frame((18, 126, 0, 256))).shape == (108, 256, 3)


def test_a_pillarboxed_frame_is_cropped_to_its_picture() -> None:
    assert Bars().see(_frame((0, 144, 32, 224))) == PictureArea(0, None, 32, 224)


def test_the_picture_grows_with_every_keyframe_that_lights_more_of_it() -> None:
    bars = Bars()
    # A dark opening: only the middle of the picture is lit.
    assert bars.see(_frame((30, 114, 0, 256))) == PictureArea(30, 114, 0, None)
    assert bars.see(_frame((18, 126, 0, 256))) == PictureArea(18, 126, 0, None)
    # A darker keyframe after it does not shrink it again.
    assert bars.see(_frame((60, 84, 0, 256))) == PictureArea(18, 126, 0, None)


def test_dark_on_one_side_only_is_the_pictures_own_dark_not_a_bar() -> None:
    # A night sky above a lit street: the top rows are dark, the bottom ones are not.
    assert Bars().see(_frame((30, 144, 0, 256))) == WHOLE_FRAME


def test_bars_that_would_leave_less_than_half_are_not_cropped() -> None:
    # White titles in a narrow band on black.
    assert Bars().see(_frame((60, 84, 0, 256))) == WHOLE_FRAME


def test_no_bars_or_an_all_black_frame_leave_the_whole_frame() -> None:
    assert Bars().see(_frame((0, 144, 0, 256))) == WHOLE_FRAME
    assert Bars().see(_frame((0, 144, 0, 256), level=0)) == WHOLE_FRAME
