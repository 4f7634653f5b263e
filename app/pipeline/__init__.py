"""The describing pipeline: one module per step, ``describe_media`` to run them all.

The names below are imported from their modules when first used (PEP 562), so that a
process that needs one step, such as a worker of the chunked scan (``chunks.py``), which
imports ``app.pipeline.chunks``, does not import every step and its libraries (the HTTP
client, the subtitle parsers) first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.pipeline.describe import (
        DescribeOptions,
        MediaOptions,
        ProgressCallback,
        SpeechSource,
        describe,
        describe_media,
    )
    from app.pipeline.scenes import SceneOptions
    from app.pipeline.sources import FetchOptions
    from app.pipeline.speech import SpeechOptions
    from app.pipeline.types import Description, Interval, Progress, Scene, Stage, StopSignal

_MODULES = {
    "DescribeOptions": "describe",
    "MediaOptions": "describe",
    "ProgressCallback": "describe",
    "SpeechSource": "describe",
    "describe": "describe",
    "describe_media": "describe",
    "SceneOptions": "scenes",
    "FetchOptions": "sources",
    "SpeechOptions": "speech",
    "Description": "types",
    "Interval": "types",
    "Progress": "types",
    "Scene": "types",
    "Stage": "types",
    "StopSignal": "types",
}

__all__ = [
    "DescribeOptions",
    "Description",
    "FetchOptions",
    "Interval",
    "MediaOptions",
    "Progress",
    "ProgressCallback",
    "Scene",
    "SceneOptions",
    "SpeechOptions",
    "SpeechSource",
    "Stage",
    "StopSignal",
    "describe",
    "describe_media",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
