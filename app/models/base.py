"""The captioner contract: a batch of images in, one text per image out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from PIL import Image


@runtime_checkable
class Captioner(Protocol):
    """Anything that describes images in words.

    Implementations must return exactly one string per input image, in order, and must give
    the same caption for an image whether it is captioned alone or within a batch.
    """

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        """Caption a batch of RGB images."""
        ...
