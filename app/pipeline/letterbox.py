"""The picture inside black bars: a scope film letterboxed in a 16:9 frame, a 4:3 one
pillarboxed.

Bars are part of every frame, so they dilute whatever is measured over the whole frame: at
a cut between two shots of a film letterboxed to 2.39:1 in 16:9, a quarter of the pixels
stay black, the content difference between the two keyframes falls by a quarter and the
colour histograms share a quarter of their mass. The keyframe scan compares keyframes
inside the bars (``scan.look_at_keyframes``), so that its rule sees a letterboxed cut as
it sees the same cut without bars.

Bars are found from the keyframes seen so far (``Bars``): a row or column of the small
copy the detectors look at lies in a bar while no pixel of it has been lit in any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BAR_LEVEL = 40
"""Brightest channel value (0-255) a pixel of a black bar stays at or under: encoded black
is 16 of 235, 0 here after conversion, with a few levels of noise; picture rows next to a
bar reach it through ringing."""

BAR_SLACK = 0.03
"""Share of the side by which the bars at its two ends may differ: bars are centred (0-1
pixel of 144 or 256 apart on the 16 real clips with bars of
``bench/results/keyframe-bound-2026-11-27.md``, session 26; a scaled picture's edge may ring
a pixel or two further on one side). Where one end is darker much further than the other,
that is the picture's own dark (a night sky), not a bar."""


@dataclass(frozen=True)
class PictureArea:
    """Rows ``top`` to ``bottom`` and columns ``left`` to ``right`` (Python slice bounds,
    None: to the end) of a small copy: the picture inside its bars."""

    top: int = 0
    bottom: int | None = None
    left: int = 0
    right: int | None = None

    def crop(self, small: np.ndarray) -> np.ndarray:
        """``small`` (height x width x channels) inside the bars; a view, not a copy."""
        return small[self.top : self.bottom, self.left : self.right]


WHOLE_FRAME = PictureArea()
"""No bars."""


class Bars:
    """The bars of a video as the keyframes seen so far show them (``see``)."""

    def __init__(self) -> None:
        self._rows: np.ndarray | None = None
        self._columns: np.ndarray | None = None

    def see(self, small: np.ndarray) -> PictureArea:
        """Take in a keyframe's small copy (BGR, uint8); the picture area as all the keyframes
        seen so far show it."""
        brightest = small.max(axis=2)
        rows = brightest.max(axis=1) > BAR_LEVEL
        columns = brightest.max(axis=0) > BAR_LEVEL
        if self._rows is None or self._columns is None:
            self._rows, self._columns = rows, columns
        else:
            self._rows |= rows
            self._columns |= columns
        top, bottom = _inside(self._rows)
        left, right = _inside(self._columns)
        return PictureArea(top, bottom, left, right)


def _inside(lit: np.ndarray) -> tuple[int, int | None]:
    """The slice bounds between the bars at both ends of ``lit`` (the rows' or the columns'
    flags), or all of it where there are none, they are not centred or they would leave
    less than half of that side (so bars on all four sides may leave a quarter of the
    frame: a 4:3 picture boxed in a scope film boxed in 16:9)."""
    where = np.flatnonzero(lit)
    if where.size == 0:
        return 0, None
    before, after = int(where[0]), lit.size - 1 - int(where[-1])
    if (
        (before == 0 and after == 0)
        or abs(before - after) > BAR_SLACK * lit.size
        or before + after > lit.size // 2
    ):
        return 0, None
    return before, lit.size - after
