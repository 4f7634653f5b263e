"""Damaged packets: skipped, as the ``ffmpeg`` command skips them, and told once.

A packet the decoder refuses (FFmpeg's "Invalid data", or another decoding error: a broken
packet in a broadcast recording, a bad sector on a disk) costs a glitch, not the film:
decoding goes on with the next packet, as the ``ffmpeg`` command goes on (it stops only with
``-xerror``). A file that breaks off for good is still incomplete: its frames
stop before its declared end (``VideoReader.frames``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

import av

logger = logging.getLogger(__name__)

F = TypeVar("F")


class Decoder(Protocol[F]):
    """A PyAV decoder: a codec context, video or audio."""

    def decode(self, packet: av.Packet | None = None) -> list[F]: ...


_AFTER = {
    "video": "the picture may break up there",
    "audio": "silence stands in for it",
}


@dataclass(frozen=True)
class Seen:
    """What a ``Damage`` met, as it leaves a worker process for the parent's ``Damage``
    (``chunks.py``), which logs each packet once however many chunks decoded it."""

    packets: dict[float | None, str] = field(default_factory=dict)
    """The damaged packets' times (``Damage.times``) and what the decoder said of each."""
    late: tuple[float, float] | None = None
    """The first frame that came out late (``Damage.late_frame``): after, time."""


class Damage:
    """The damaged packets met in one stream of a file, shared by the readers of that
    stream (the keyframe pass, the ``aside`` readers of a ``VideoReader``) and fed what the
    chunks' worker processes met (``add``), so that a packet decoded by several is logged
    once."""

    LISTED = 5
    """Damaged packets logged one by one; past these, one line says that more follow."""

    def __init__(self, name: str, kind: Literal["video", "audio"]) -> None:
        """``name``: what messages call the file (its URL); ``kind``: the stream's."""
        self._name = name
        self._kind = kind
        self._lock = threading.Lock()
        self._packets: dict[float | None, str] = {}
        self._late: tuple[float, float] | None = None

    @property
    def times(self) -> set[float | None]:
        """When the damaged packets are shown, seconds (None: met while draining the
        decoder at the end of the data). A decoder that decodes several frames at once
        reports a damaged packet a few packets late: "near" that time."""
        with self._lock:
            return set(self._packets)

    def seen(self) -> Seen:
        """What this met, to be ``add``-ed to another process's ``Damage``."""
        with self._lock:
            return Seen(dict(self._packets), self._late)

    def add(self, seen: Seen) -> None:
        """Take in what another ``Damage`` met (a chunk's worker process), logging what this
        one has not."""
        for time, reason in seen.packets.items():
            self._note(time, reason)
        if seen.late is not None:
            self.late_frame(*seen.late)

    def decode(
        self, decoder: Decoder[F], packet: av.Packet | None, time: float | None
    ) -> list[F] | None:
        """``decoder.decode(packet)``; None where the decoder finds the packet (shown at
        ``time`` seconds) damaged: it is skipped and logged."""
        try:
            return decoder.decode(packet)
        except av.FFmpegError as exc:  # AAC's decoder says "Bug" of some garbage
            self._note(None if time is None else round(time, 6), str(exc.strerror or exc))
            return None

    def late_frame(self, after: float, time: float) -> None:
        """A frame shown at ``time`` came out after one shown at ``after``, a second or more
        later: one of them is dropped, since the scan's detectors take frames in the order
        they are shown. Logged the first time."""
        with self._lock:
            first = self._late is None
            if first:
                self._late = (after, time)
        if first:
            logger.warning(
                "%s: a frame shown at %.2f s came out after one shown at %.2f s (timestamps "
                "out of order, as past a damaged packet); frames out of order are dropped",
                self._name,
                time,
                after,
            )

    def _note(self, time: float | None, reason: str) -> None:
        with self._lock:
            if time in self._packets:
                return
            self._packets[time] = reason
            count = len(self._packets)
        if count <= self.LISTED:
            logger.warning(
                "%s: a damaged %s packet %s was skipped (%s); %s",
                self._name,
                self._kind,
                "where the data ends" if time is None else f"near {time:.2f} s",
                reason,
                _AFTER[self._kind],
            )
        elif count == self.LISTED + 1:
            logger.warning(
                "%s: more damaged %s packets were skipped; not listed", self._name, self._kind
            )
