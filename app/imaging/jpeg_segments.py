"""A JPEG's header, walked before Pillow reads it: at most `MAX_HEADER_STEPS` steps.

Pillow reads everything before a JPEG's first start-of-scan in Python: one step per segment, and one per
byte of padding (0xFF fill bytes before a marker) or of stray data between segments. The format bounds
neither, so a few megabytes of them cost seconds of CPU, twice (the header is read once to size the
request and again to decode it), for an image of a few pixels. `check_header` takes the same path at C
speed (`bytes.find` and a regular expression skip the runs) and refuses a header that would take Pillow
more steps than any encoder writes. After the first scan libjpeg reads the file, in C;
`header.MAX_JPEG_SCANS` bounds the scans.
"""

from __future__ import annotations

import re

from app.errors import BadImage

# Encoders write a few dozen segments (APPn, DQT, SOF, DHT, DRI, COM) and no padding; an ICC profile
# split over APP2 segments adds at most 255. Pillow takes about a microsecond a step.
MAX_HEADER_STEPS = 1 << 16
_FILL = re.compile(rb"\xff+")
_START_OF_SCAN = 0xDA
_ESCAPED_FF = 0x00
# Pillow knows the markers 0xC0 to 0xFE; of those, RST0-7, SOI and EOI have no length field.
_FIRST_KNOWN_MARKER = 0xC0
_STANDALONE = frozenset(range(0xD0, 0xDA))


def check_header(data: bytes) -> None:
    """Raise BadImage when the JPEG `data` (starting with SOI) takes more than `MAX_HEADER_STEPS` steps
    to read up to its first start-of-scan. Bytes Pillow would refuse anyway end the walk without error."""
    steps = 0
    position = 2  # past SOI
    while position < len(data):
        marker = data.find(b"\xff", position)
        if marker < 0:  # stray bytes to the end, each a step, then Pillow finds no image
            _count(steps + len(data) - position)
            return
        run = _FILL.match(data, marker)
        fill_end = run.end() if run else marker + 1
        steps = _count(steps + (marker - position) + (fill_end - marker))
        if fill_end >= len(data):
            return
        code = data[fill_end]
        if code == _START_OF_SCAN or (code < _FIRST_KNOWN_MARKER and code != _ESCAPED_FF):
            return  # the image data starts, or Pillow stops with "no marker found"
        if code == _ESCAPED_FF or code in _STANDALONE:
            position = fill_end + 1
        else:  # a segment: its length counts the two length bytes, so a smaller one still moves on
            length = int.from_bytes(data[fill_end + 1 : fill_end + 3], "big")
            position = fill_end + 1 + max(length, 2)


def _count(steps: int) -> int:
    if steps > MAX_HEADER_STEPS:
        raise BadImage(
            f"the JPEG's header takes more than {MAX_HEADER_STEPS} steps to read (segments, padding and "
            "stray bytes before its image data); encoders write a few dozen"
        )
    return steps
