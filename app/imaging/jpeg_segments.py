"""A JPEG's header, walked before Pillow reads it, so that reading it stays cheap.

Pillow reads everything before a JPEG's first start-of-scan in Python, twice per request (once to size
it, once to decode it), and the format bounds none of what makes that slow:

- steps: one per segment, and one per byte of padding (0xFF fill bytes before a marker) or of stray data
  between segments. Megabytes of padding cost a microsecond a byte;
- segments that Pillow takes apart in Python, item by item: quantisation tables (DQT), frame headers
  (SOFn), Photoshop resource blocks (APP13) and EXIF, which it joins segment by segment (APP1). Megabytes
  of them cost a few tenths of a microsecond a byte.

Either way, an upload of a few pixels could cost seconds of CPU. `check_header` takes the same path at C
speed (`bytes.find` and a regular expression skip the runs) and refuses a header over `MAX_HEADER_STEPS`
steps or `MAX_PARSED_BYTES` of such segments: far more than encoders write. Segments that Pillow only
stores (XMP, ICC, comments, other APPn) are not limited here (the ICC profile is, in `image`). After the
first scan libjpeg reads the file, in C; `header.MAX_JPEG_SCANS` bounds the scans.
"""

from __future__ import annotations

import re

from app.errors import BadImage

# Encoders write a few dozen segments (APPn, DQT, SOF, DHT, DRI, COM) and no padding; an ICC profile
# split over APP2 segments adds at most 255.
MAX_HEADER_STEPS = 1 << 16
# Encoders write four quantisation tables at most (520 bytes), one frame header, one EXIF segment of at
# most 64 KiB and Photoshop resources of a few hundred KiB.
MAX_PARSED_BYTES = 1 << 20
_FILL = re.compile(rb"\xff+")
_START_OF_SCAN = 0xDA
_ESCAPED_FF = 0x00
# Pillow knows the markers 0xC0 to 0xFE; of those, RST0-7, SOI and EOI have no length field.
_FIRST_KNOWN_MARKER = 0xC0
_STANDALONE = frozenset(range(0xD0, 0xDA))
# SOF0-15 but DHT (C4), JPG (C8) and DAC (CC), which Pillow skips; DHP, which it reads as a SOF; and DQT.
_PARSED_TABLES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xDE, 0xDB}
_PARSED_APP_PREFIXES = {0xE1: b"Exif\x00\x00", 0xED: b"Photoshop 3.0\x00"}


def check_header(data: bytes) -> None:
    """Raise BadImage when the JPEG `data` (starting with SOI) takes more than `MAX_HEADER_STEPS` steps
    or `MAX_PARSED_BYTES` of parsed segments to read up to its first start-of-scan. Bytes that Pillow
    would refuse anyway end the walk without error."""
    steps = parsed = 0
    position = 2  # past SOI
    while position < len(data):
        marker = data.find(b"\xff", position)
        if marker < 0:  # stray bytes to the end, each a step, then Pillow finds no image
            _count_steps(steps + len(data) - position)
            return
        run = _FILL.match(data, marker)  # matches: data[marker] is 0xFF
        fill_end = run.end() if run else marker + 1
        steps = _count_steps(steps + (marker - position) + (fill_end - marker))
        if fill_end >= len(data):
            return
        code = data[fill_end]
        if code == _START_OF_SCAN or (code < _FIRST_KNOWN_MARKER and code != _ESCAPED_FF):
            return  # the image data starts, or Pillow stops with "no marker found"
        if code == _ESCAPED_FF or code in _STANDALONE:
            position = fill_end + 1
            continue
        # A segment: its length counts the two length bytes, so a smaller one still moves on.
        length = int.from_bytes(data[fill_end + 1 : fill_end + 3], "big")
        prefix = _PARSED_APP_PREFIXES.get(code)
        if code in _PARSED_TABLES or (prefix and data.startswith(prefix, fill_end + 3)):
            parsed += length
            if parsed > MAX_PARSED_BYTES:
                raise BadImage(
                    f"the JPEG's header holds more than {MAX_PARSED_BYTES} bytes of tables, EXIF and "
                    "Photoshop resources; encoders write a few kilobytes"
                )
        position = fill_end + 1 + max(length, 2)


def _count_steps(steps: int) -> int:
    if steps > MAX_HEADER_STEPS:
        raise BadImage(
            f"the JPEG's header takes more than {MAX_HEADER_STEPS} steps to read (segments, padding and "
            "stray bytes before its image data); encoders write a few dozen"
        )
    return steps
