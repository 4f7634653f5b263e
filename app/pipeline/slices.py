"""Which pictures of an H.264 or HEVC stream its encoder coded as intra, read from the
header of each packet's first slice: nothing is decoded.

The keyframe pass needs them (``video.KeyframePass``): an encoder with scene-cut detection
on codes a scene change that comes too soon after a keyframe as an intra picture inside the
group. A slice header names its type in its first few bytes: in H.264 after the position of
the slice (ITU-T H.264, 7.3.3), in HEVC after a flag or two and the picture parameter set's
number, past as many reserved bits as that set declares (H.265, 7.3.6.1 and 7.3.2.3.1). The
type of a picture is the type of its first slice, as FFmpeg's decoders give it.

Reading the headers costs about a fifth of what FFmpeg's decoders take to find the same
pictures (skipping all but intra frames, they still decode every intra picture), and hands
each out as its packet is read instead of a reorder delay later.
"""

from __future__ import annotations

from collections.abc import Iterator

_HEAD = 24
"""Bytes of a NAL unit read for its slice header: the fields read take at most a few."""

_START = b"\x00\x00\x01"
"""An Annex B start code (MPEG-TS, raw streams); MP4 and Matroska prefix each NAL unit with
its length instead."""

_H264_SLICES = frozenset({1, 2, 5})
"""H.264 NAL unit types that begin with a slice header: a slice of a picture that is no
IDR picture, partition A of a partitioned one, a slice of an IDR picture."""
_H264_INTRA = frozenset({2, 4})
"""H.264 slice types (modulo 5) that refer to no other picture: I and SI."""

_HEVC_SLICES = range(32)
"""HEVC NAL unit types of slice segments (the others are parameter sets, SEI and so on)."""
_HEVC_IRAP = range(16, 24)
"""HEVC NAL unit types of random-access pictures, whose slice header has one more flag."""
_HEVC_PPS = 34
_HEVC_INTRA = 2


class UnreadableSlice(ValueError):
    """A packet whose NAL units or slice header break off or run past their length."""


class SliceTypes:
    """Tells the intra pictures of one H.264 or HEVC stream from its packets, in decoding
    order (HEVC's picture parameter sets, which a slice header depends on, may come in the
    stream).

    Args:
        codec: ``h264`` or ``hevc`` (FFmpeg's names).
        extradata: the stream's codec extradata: an ``avcC`` or ``hvcC`` record where the
            NAL units are prefixed by their lengths; else Annex B parameter sets, or none.
    """

    def __init__(self, codec: str, extradata: bytes | None) -> None:
        if codec not in ("h264", "hevc"):
            raise ValueError(f"slice headers are read for H.264 and HEVC, not {codec}")
        self._hevc = codec == "hevc"
        record = extradata or b""
        self._length_size: int | None = None
        self._extra_bits: dict[int, int] = {}
        """HEVC: each picture parameter set's ``num_extra_slice_header_bits``."""
        # As FFmpeg tells them: an avcC record begins with its version, 1; an hvcC record
        # with anything but a start code (its version, 1, or 0 from early muxers).
        hvcc = self._hevc and len(record) > 22 and (record[0] or record[1] or record[2] > 1)
        if hvcc or (not self._hevc and len(record) > 6 and record[0] == 1):
            self._length_size = (record[21 if self._hevc else 4] & 3) + 1
            if self._hevc:
                for nal in _hvcc_nal_units(record):
                    self._note(nal)
        else:
            for nal in _annex_b(record):
                self._note(nal)

    def intra(self, packet: bytes) -> bool:
        """Whether the picture in ``packet`` (one access unit) is intra: its first slice is.

        A packet whose NAL units or slice header cannot be read counts as intra: the
        keyframe pass then decodes its group rather than skip it. A packet without a slice
        (parameter sets alone) is no picture, and not intra.
        """
        try:
            for nal in self._nal_units(packet):
                intra = self._slice_intra(nal)
                if intra is not None:
                    return intra
        except UnreadableSlice:
            return True
        return False

    def _nal_units(self, packet: bytes) -> Iterator[bytes]:
        if self._length_size is None:
            yield from _annex_b(packet)
            return
        size, at = self._length_size, 0
        while at < len(packet):
            length = int.from_bytes(packet[at : at + size], "big")
            at += size
            if length == 0 or at + length > len(packet):
                raise UnreadableSlice(f"a NAL unit of {length} bytes at byte {at}")
            yield packet[at : at + min(length, _HEAD)]
            at += length

    def _slice_intra(self, nal: bytes) -> bool | None:
        """Whether the slice in ``nal`` is intra; None where ``nal`` is no picture's first
        slice. Notes HEVC picture parameter sets."""
        if not nal:
            return None
        if not self._hevc:
            if nal[0] & 0x1F not in _H264_SLICES:
                return None
            bits = _Bits(nal[1:])
            bits.exp_golomb()  # first_mb_in_slice
            return bits.exp_golomb() % 5 in _H264_INTRA
        if len(nal) < 2:
            raise UnreadableSlice("an HEVC NAL unit header cut short")
        kind = (nal[0] >> 1) & 0x3F
        if kind == _HEVC_PPS:
            self._note(nal)
        if kind not in _HEVC_SLICES or _hevc_layer(nal):
            return None
        bits = _Bits(nal[2:])
        if not bits.flag():  # first_slice_segment_in_pic_flag
            return None
        if kind in _HEVC_IRAP:
            bits.flag()  # no_output_of_prior_pics_flag
        parameters = bits.exp_golomb()
        if parameters not in self._extra_bits:
            raise UnreadableSlice(f"picture parameter set {parameters} not seen")
        bits.skip(self._extra_bits[parameters])
        return bits.exp_golomb() == _HEVC_INTRA

    def _note(self, nal: bytes) -> None:
        """Note the extra slice header bits of an HEVC picture parameter set of the base
        layer (``nal``; other NAL units are passed over)."""
        if (
            self._hevc
            and len(nal) > 2
            and (nal[0] >> 1) & 0x3F == _HEVC_PPS
            and not _hevc_layer(nal)
        ):
            bits = _Bits(nal[2:])
            parameters = bits.exp_golomb()
            bits.exp_golomb()  # pps_seq_parameter_set_id
            bits.skip(2)  # dependent_slice_segments_enabled_flag, output_flag_present_flag
            self._extra_bits[parameters] = bits.read(3)


class _Bits:
    """Reads a NAL unit's first bytes as bits, with the emulation-prevention bytes that keep
    start codes out of it (``00 00 03``) taken out."""

    def __init__(self, data: bytes) -> None:
        raw = bytes(data[:_HEAD]).replace(b"\x00\x00\x03", b"\x00\x00")
        self._value = int.from_bytes(raw, "big")
        self._left = len(raw) * 8

    def read(self, count: int) -> int:
        if count > self._left:
            raise UnreadableSlice("a slice header longer than its NAL unit")
        self._left -= count
        return (self._value >> self._left) & ((1 << count) - 1)

    def flag(self) -> bool:
        return bool(self.read(1))

    def skip(self, count: int) -> None:
        self.read(count)

    def exp_golomb(self) -> int:
        """An unsigned Exp-Golomb code, ``ue(v)``: n zeros, a one, n more bits."""
        rest = self._value & ((1 << self._left) - 1)
        zeros = self._left - rest.bit_length()
        if rest == 0 or zeros > 31:
            raise UnreadableSlice("an Exp-Golomb code past the end of the slice header")
        self._left -= zeros
        return self.read(zeros + 1) - 1


def _hevc_layer(nal: bytes) -> int:
    """An HEVC NAL unit's ``nuh_layer_id``: 0 for the base layer; above it, MV-HEVC's second
    view or an alpha layer, with parameter sets of their own that may reuse the base
    layer's numbers."""
    return ((nal[0] & 1) << 5) | (nal[1] >> 3)


def _annex_b(data: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex B byte stream, each cut to its first ``_HEAD`` bytes."""
    at = data.find(_START)
    while at >= 0:
        at += len(_START)
        following = data.find(_START, at)
        yield data[at : min(at + _HEAD, len(data) if following < 0 else following)]
        at = following


def _hvcc_nal_units(record: bytes) -> Iterator[bytes]:
    """The NAL units (parameter sets) of an ``hvcC`` record (ISO/IEC 14496-15, 8.3.3)."""
    at = 23
    for _ in range(record[22]):
        count = int.from_bytes(record[at + 1 : at + 3], "big")
        at += 3
        for _ in range(count):
            length = int.from_bytes(record[at : at + 2], "big")
            yield record[at + 2 : at + 2 + length]
            at += 2 + length
