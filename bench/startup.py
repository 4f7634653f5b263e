"""Start-up of the CLI (issue 12, item 3): seconds from the start of the process to the scan's
first decoded frame, to the end, and the CPU seconds, of one ``python -m app`` command.

The command's arguments follow, as for ``python -m app``; its output is discarded::

    .venv/bin/python bench/startup.py describe VIDEO --model DIR -q --speech subtitles
    .venv/bin/python bench/startup.py scenes VIDEO

It imports the ``app`` of the checkout it lies in. The first frame is timed by
wrapping ``VideoReader.frames`` (the full scan's decode) and ``KeyframePass`` (the keyframe
scan's first pass); the bench never edits ``app/``.
"""

from __future__ import annotations

import time

STARTED = time.monotonic()

import os  # noqa: E402  (the clock starts before any import)
import resource  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.pipeline.video import DecodedFrame, KeyframePass, VideoReader  # noqa: E402


def main() -> None:
    first: list[float] = []

    def timed(
        decode: Callable[..., Iterator[DecodedFrame]],
    ) -> Callable[..., Iterator[DecodedFrame]]:
        def frames(*args: Any, **kwargs: Any) -> Iterator[DecodedFrame]:
            for decoded in decode(*args, **kwargs):
                if not first:
                    first.append(time.monotonic() - STARTED)
                yield decoded

        return frames

    VideoReader.frames = timed(VideoReader.frames)  # type: ignore[method-assign]
    KeyframePass.__iter__ = timed(KeyframePass.__iter__)  # type: ignore[method-assign]
    from app.cli import main as cli

    with open(os.devnull, "w") as out:
        status = cli(sys.argv[1:], stdout=out)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    seen = f"{first[0]:.2f} s" if first else "never"
    print(
        f"{sys.argv[1]}: status {status}, first frame decoded at {seen}, done at "
        f"{time.monotonic() - STARTED:.2f} s, CPU {usage.ru_utime + usage.ru_stime:.1f} s"
    )


if __name__ == "__main__":
    main()
