"""How a video stream orders its frames, and which reader numbers them exactly.

Frame i of a video is the i-th picture a full sequential decode puts out. FFmpeg's decoders
put pictures out in presentation order, so this is the video as a player shows it. A reader
that seeks must find the same numbering without decoding from the start, and how it can do
that depends on the file (found by demuxing, no decoding: `classify`):

- `plain`: no frame is reordered, or the container stores presentation times (MP4, MOV,
  Matroska/WebM) and every group of pictures is closed. Sorting the packets' timestamps
  numbers the frames, and counting pictures on from a key frame does too. Both readers
  are exact.
- `open-gop`: B-frames after a key frame (in decode order) are shown before it: they refer
  to the previous group of pictures. decord numbers a key frame by its packet position in
  decode order, which is its position on screen only in closed groups, and it counts the
  pictures after a seek, of which the decoder drops those it cannot reconstruct: it returns
  neighbouring frames. The timestamps are stored, so PyAV is exact.
- `avi-b-frames`: B-frames in AVI. AVI stores no presentation times, only one chunk per
  frame period in decode order; FFmpeg's demuxer guesses timestamps from the frame types.
  The guess is right for one picture per chunk, but decord's seeks misnumber these files
  (measured on MPEG-4 part 2 and on H.264 in AVI).
- `packed-b-frames`: DivX/XviD "packed" B-frames (in AVI), as about a third of UCF-101's
  and HMDB-51's originals are: one chunk carries a P-VOP and the following B-VOP, and a 6-byte
  not-coded VOP holds the P-VOP's place later on. The demuxer's guessed timestamps then swap
  neighbouring frames (sorting by them puts pictures 2 and 3 of every group of three in the
  wrong order), so no timestamp can be trusted. The decoder's output order is right: it is
  what FFmpeg's own player, the mpeg4_unpack_bframes bitstream filter remuxed to a clean
  file, and decord reading from the start all give, and it is the smoother motion (the
  test on the real UCF-101 file checks that).

For these two layouts PyAV counts the pictures the decoder puts out from the start of the
file (`Layout.count_frames`) and never seeks: AVI records no display number for a key
frame, and these files rarely have more than one (XviD puts one every 300 frames, longer
than most UCF-101 and HMDB-51 clips). `prepare` writes a copy without B-frames that both
readers read exactly and decord seeks in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VOP_START_CODE = b"\x00\x00\x01\xb6"  # MPEG-4 part 2: a video object plane (a picture) starts


@dataclass(frozen=True)
class Layout:
    name: str
    description: str  # what the files are, for reports
    decoders: tuple[str, ...]  # the readers that return the exact frames, preferred first
    count_frames: bool  # PyAV numbers frames by counting decoder output from the start


LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (
    Layout("plain", "frames in order, or stored timestamps and closed groups of pictures",
           ("decord", "pyav"), False),
    Layout("open-gop", "B-frames that refer across key frames: open groups of pictures",
           ("pyav",), False),
    Layout("avi-b-frames", "B-frames in AVI, which stores no presentation times", ("pyav",), True),
    Layout("packed-b-frames", "DivX/XviD packed B-frames: two pictures in one AVI chunk",
           ("pyav",), True),
)}
PLAIN = "plain"


def check_layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise ValueError(f"layout={name!r} is not a frame layout; choose one of {tuple(LAYOUTS)}")
    return LAYOUTS[name]


def exact_decoders(layout: str) -> tuple[str, ...]:
    """The readers that return exact frames for a file of `layout`."""
    return check_layout(layout).decoders


def decoder_order(layout: str, preferred: str, fallback: bool = True) -> list[str]:
    """Readers to try for a file of `layout`: `preferred` first if it is exact there, then
    (with `fallback`) the other exact ones. Empty when `preferred` is not exact and there
    is no fallback."""
    exact = exact_decoders(layout)
    if not fallback:
        return [preferred] if preferred in exact else []
    return [preferred] * (preferred in exact) + [b for b in exact if b != preferred]


def count_vops(payload: bytes) -> int:
    """Pictures (VOPs) in one MPEG-4 part 2 packet: two or more means packed B-frames."""
    return payload.count(VOP_START_CODE)


def classify(*, is_avi: bool, has_b_frames: bool, pts: np.ndarray, keys: np.ndarray,
             packed: bool) -> str:
    """The layout of one stream from its demuxed packets.

    pts: presentation timestamps of the non-empty packets in decode order (may be guesses in
    AVI); keys: bool per packet, key frame or not; packed: some packet carries two VOPs.
    """
    if packed:  # the chunk a picture arrives in says nothing about when it is shown
        return "packed-b-frames"
    reordered = bool(pts.size > 1 and np.any(np.diff(pts) < 0))
    if is_avi:
        return "avi-b-frames" if (has_b_frames or reordered) else PLAIN
    if not reordered:
        return PLAIN
    # A key frame whose pts is above the pts of a later packet (in decode order) has frames
    # shown before it that are decoded after it: an open group of pictures.
    later_min = np.minimum.accumulate(pts[::-1])[::-1]  # min over packets i.. in decode order
    key_at = np.flatnonzero(keys[:-1])
    return "open-gop" if bool(np.any(pts[key_at] > later_min[key_at + 1])) else PLAIN
