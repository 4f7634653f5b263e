"""Black bars found from the keyframes' small copies (``app.pipeline.letterbox``)."""

from __future__ import annotations

import numpy as np
import pytest

from app.pipeline.letterbox import BAR_LEVEL, WHOLE_FRAME, Bars, PictureArea


def _frame(lit: tuple[int, int, int, int], level: int = 120, noise: int = 12) -> np.ndarray:
    """A 144x256 BGR small copy, black but for rows ``lit[0]:lit[1]`` and columns
    ``lit[2]:lit[3]`` at ``level``, with noise under ``noise`` in the black (as decoded)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, noise, size=(144, 256, 3), dtype=np.uint8)
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


@pytest.mark.parametrize(
    ("lit", "area"),
    [
        # 4 rows of 144 more at the bottom (under 3 %): ringing on one side, still bars.
        ((18, 122, 0, 256), PictureArea(18, 122, 0, None)),
        ((18, 121, 0, 256), WHOLE_FRAME),
        # 7 columns of 256 more on the right.
        ((0, 144, 32, 217), PictureArea(0, None, 32, 217)),
        ((0, 144, 32, 216), WHOLE_FRAME),
        # Bars that leave exactly half of the rows, and one row less.
        ((36, 108, 0, 256), PictureArea(36, 108, 0, None)),
        ((36, 107, 0, 256), WHOLE_FRAME),
    ],
    ids=["4-rows-off", "5-rows-off", "7-columns-off", "8-columns-off", "half", "under-half"],
)
def test_bars_are_cropped_only_where_centred_and_leaving_half(
    lit: tuple[int, int, int, int], area: PictureArea
) -> None:
    assert Bars().see(_frame(lit)) == area


def test_noise_up_to_the_bar_level_stays_in_the_bar() -> None:
    assert Bars().see(_frame((18, 126, 0, 256), noise=BAR_LEVEL + 1)) == PictureArea(18, 126)
    assert Bars().see(_frame((18, 126, 0, 256), noise=BAR_LEVEL + 2)) == WHOLE_FRAME
