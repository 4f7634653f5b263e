"""The describing pipeline: one module per step, ``describe_media`` to run them all."""

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
