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

    def caption(
        self, images: Sequence[Image.Image], *, max_new_tokens: int | None = None
    ) -> list[str]:
        """Caption a batch of RGB images.

        Args:
            images: The images to describe.
            max_new_tokens: Most tokens per caption for this call (about one word each), to fit
                a word budget; None keeps the captioner's own limit.
        """
        ...
