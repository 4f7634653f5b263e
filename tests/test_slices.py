"""Reading which pictures are intra from slice headers, against FFmpeg's decoders."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest

from app.pipeline.slices import SliceTypes
from tests.fixtures.media import probe_video


def _encode(path: Path, *args: str, interlaced: bool = False) -> Path:
    """Four pictures in turn, a cut every 0.6 s, encoded with ``args``: under x264's and
    x265's shortest group (min-keyint 25), so a cut that is no keyframe is coded as an
    intra frame inside a group."""
    shots = [
        f"{name}=d=0.6:r=25:s=160x120[s{index}]"
        for index, name in enumerate(["testsrc", "rgbtestsrc", "smptebars", "testsrc2"] * 3)
    ]
    joined = "".join(f"[s{index}]" for index in range(len(shots)))
    tail = ",tinterlace=interleave_top,fieldorder=tff" if interlaced else ""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-filter_complex",
         f"{';'.join(shots)};{joined}concat=n={len(shots)}:v=1:a=0,format=yuv420p{tail}",
         *args, str(path)],
        check=True,
    )  # fmt: skip
    return path


def _decoded_intra(path: Path) -> list[float]:
    """The presentation times of the frames FFmpeg's decoder gives as intra (``ffprobe``)."""
    frames = probe_video(path, "frame=pts_time,pict_type")
    return sorted(round(float(time), 3) for time, kind, *_ in frames if kind == "I")


def _read_intra(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        slices = SliceTypes(stream.codec_context.name, stream.codec_context.extradata)
        return sorted(
            round(float(packet.pts * stream.time_base), 3)
            for packet in container.demux(stream)
            if packet.pts is not None and slices.intra(bytes(packet))
        )


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("x264.mp4", ("-c:v", "libx264", "-bf", "3")),
        ("x264.ts", ("-c:v", "libx264", "-bf", "3")),
        ("x264-slices.mkv", ("-c:v", "libx264", "-x264-params", "slices=4")),
        ("x264-open-gop.mp4", ("-c:v", "libx264", "-x264-params", "open-gop=1")),
        # Interlaced as x264 codes it: frames with field macroblock pairs (MBAFF).
        ("x264-mbaff.mkv", ("-c:v", "libx264", "-flags", "+ildct+ilme")),
        ("x265.mp4", ("-c:v", "libx265", "-x265-params", "log-level=error")),
        ("x265.ts", ("-c:v", "libx265", "-x265-params", "log-level=error:repeat-headers=1")),
    ],
)
def test_slice_headers_tell_the_intra_frames_ffmpeg_decodes(
    tmp_path: Path, name: str, args: tuple[str, ...]
) -> None:
    path = _encode(tmp_path / name, *args, interlaced="mbaff" in name)
    intra = _read_intra(path)
    # Keyframes and the cuts inside groups: more intra frames than the clock's one.
    assert len(intra) >= 6
    assert intra == _decoded_intra(path)


# HEVC NAL units in Annex B: a picture parameter set declaring two extra slice header
# bits (pps_id 0, sps_id 0, two flags off, num_extra_slice_header_bits 2), then the first
# slice of a TRAIL_R picture (first_slice_segment_in_pic_flag, pps_id 0, the two extra bits,
# slice_type): without the extra bits its type would be read two bits early.
HEVC_PPS = b"\x00\x00\x01\x44\x01\xc5"
HEVC_I_SLICE = b"\x00\x00\x01\x02\x01\xc7\x80"
HEVC_P_SLICE = b"\x00\x00\x01\x02\x01\xc5\x80"


def test_an_hvcc_record_of_version_0_is_read_as_one(tmp_path: Path) -> None:
    # Early muxers wrote 0 for the record's version; FFmpeg takes it for hvcC all the same.
    path = _encode(tmp_path / "x265.mp4", "-c:v", "libx265", "-x265-params", "log-level=error")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        record = bytes(stream.codec_context.extradata or b"")
        slices = SliceTypes("hevc", b"\x00" + record[1:])
        intra = sorted(
            round(float(packet.pts * stream.time_base), 3)
            for packet in container.demux(stream)
            if packet.pts is not None and slices.intra(bytes(packet))
        )
    assert intra == _decoded_intra(path)


def test_hevc_slice_types_are_read_past_the_extra_bits_their_parameter_set_declares() -> None:
    in_band = SliceTypes("hevc", None)
    assert in_band.intra(HEVC_PPS + HEVC_I_SLICE)
    assert not in_band.intra(HEVC_P_SLICE)
    assert SliceTypes("hevc", HEVC_PPS).intra(HEVC_I_SLICE)


def test_hevc_parameter_sets_of_a_layer_above_the_base_are_not_the_base_layers() -> None:
    # MV-HEVC (a phone's spatial video) or an alpha layer: layer 1's picture parameter set
    # 0 declares two extra slice header bits, the base layer's none; the base layer's I
    # slice is read with none.
    base_pps = b"\x00\x00\x01\x44\x01\xc1"
    layer_pps = b"\x00\x00\x01\x44\x09\xc5"
    base_i_slice = b"\x00\x00\x01\x02\x01\xdc"
    assert SliceTypes("hevc", None).intra(base_pps + layer_pps + base_i_slice)


def test_a_packet_whose_slice_header_cannot_be_read_counts_as_intra(tmp_path: Path) -> None:
    path = _encode(tmp_path / "x264.mp4", "-c:v", "libx264")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        slices = SliceTypes("h264", stream.codec_context.extradata)
        packets = [bytes(packet) for packet in container.demux(stream) if packet.size]
    predicted = [packet for packet in packets if not slices.intra(packet)]
    assert predicted
    # Its first NAL unit's length runs past the packet.
    assert slices.intra(b"\x00\x00\x40\x00" + predicted[0][4:])
    # A picture parameter set whose picture never came: no slice, no picture.
    assert not SliceTypes("hevc", None).intra(HEVC_PPS)
    # A slice of a picture whose parameter set was never seen.
    assert SliceTypes("hevc", None).intra(HEVC_P_SLICE)


def test_only_h264_and_hevc_slices_are_read() -> None:
    with pytest.raises(ValueError, match="not vp9"):
        SliceTypes("vp9", None)
