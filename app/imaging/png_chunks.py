"""A PNG's chunks, checked before any decoder sees them: image data bounded by the header, metadata bounded.

PNG image data is one zlib stream split over IDAT chunks, and nothing in the format stops that stream
from inflating far past the image: an 8 x 8 image can carry gigabytes of it. Decoders differ in what
they do with the excess (libpng inflates all of it; Pillow stops within a read block), and metadata
chunks (iCCP, zTXt, iTXt) are zlib streams of their own. So `checked` walks the chunks once, before
decoding, and returns a PNG that holds only what decoding needs:

- The image data is inflated in steps, never beyond height x (row bytes + 1) (the filtered rows, each
  pass of an interlaced image counted), plus one byte to tell "more" from "exactly that". More data than
  that, or anything after the end of the stream, is refused; so is a stream that ends early.
- An ICC profile larger than `image.MAX_ICC_PROFILE_BYTES` once inflated is dropped, with a log line; it
  is inflated only up to that limit to find out.
- Only IHDR, PLTE, tRNS, IDAT, iCCP, eXIf (orientation) and the APNG control chunks (so that an
  animation is still recognised and refused) are kept. Text and unknown chunks never reach a decoder.
- The IHDR that the limits were checked against, the first chunk, is the only one: Pillow takes the last
  IHDR it meets, so a second one would let it decode a size and depth that nothing here had checked.
- At most `MAX_CHUNKS` chunks are walked (the walk is Python, one step per chunk).

Decoders still check the CRCs of what is kept.
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass

from app.errors import BadImage
from app.imaging.image import MAX_ICC_PROFILE_BYTES

logger = logging.getLogger(__name__)

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A 20 MB upload written in libpng's default 8 KB IDAT chunks has about 2,600; this bound is far above any
# real file and keeps the walk to a few tens of milliseconds.
MAX_CHUNKS = 1 << 16
_KEPT = frozenset({b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"iCCP", b"eXIf", b"acTL", b"fcTL"})
_IEND = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
# Inflated bytes per step: the most the check holds at once.
_STEP = 1 << 20
# Samples per pixel and the bit depths the specification allows, by colour type.
_COLOUR_TYPES = {0: (1, (1, 2, 4, 8, 16)), 2: (3, (8, 16)), 3: (1, (1, 2, 4, 8)), 4: (2, (8, 16)),
                 6: (4, (8, 16))}
# Adam7 passes: first column, first row, column step, row step.
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


@dataclass(frozen=True)
class PngHeader:
    """The IHDR chunk: size, bit depth, colour type (0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA)."""

    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlaced: bool

    @property
    def samples(self) -> int:
        return _COLOUR_TYPES[self.colour_type][0]

    def row_bytes(self, width: int) -> int:
        return (width * self.samples * self.bit_depth + 7) // 8

    @property
    def data_size(self) -> int:
        """Bytes of filtered scanlines the image data must inflate to: a filter byte per row and pass."""
        if not self.interlaced:
            return self.height * (1 + self.row_bytes(self.width))
        total = 0
        for x0, y0, dx, dy in _ADAM7:
            columns, rows = -(-(self.width - x0) // dx), -(-(self.height - y0) // dy)
            if columns > 0 and rows > 0:
                total += rows * (1 + self.row_bytes(columns))
        return total


def read_header(data: bytes) -> PngHeader:
    """The IHDR of PNG bytes (the specification puts it first); BadImage when it is missing or invalid."""
    if len(data) < 33 or data[12:16] != b"IHDR" or data[8:12] != b"\x00\x00\x00\x0d":
        raise BadImage("the PNG has no valid IHDR header chunk")
    width, height, depth, colour, _compression, _filter, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    allowed = _COLOUR_TYPES.get(colour)
    if allowed is None or depth not in allowed[1]:
        raise BadImage(f"the PNG header has an invalid colour type {colour} with bit depth {depth}")
    if not (width and height) or interlace > 1:
        raise BadImage(f"the PNG header is invalid ({width}x{height}, interlace method {interlace})")
    return PngHeader(width, height, depth, colour, interlace == 1)


def checked(data: bytes, header: PngHeader) -> bytes:
    """`data` reduced to the chunks decoding needs, once its image data is known to match `header`.

    Raises BadImage for a truncated file, too many chunks, a second IHDR, or image data that inflates to
    more or less than the header's size. Call it after the pixel count of `header` has been checked.
    """
    view = memoryview(data)
    kept: list[memoryview | bytes] = [view[:8]]
    image_data = _BoundedInflate(header.data_size)
    position = 8
    for _ in range(MAX_CHUNKS):
        if position + 12 > len(data):
            raise BadImage("the PNG is truncated (it ends before its IEND chunk)")
        length, kind = struct.unpack_from(">I4s", data, position)
        end = position + 12 + length
        if end > len(data):
            raise BadImage(f"the PNG is truncated (its {kind!r} chunk runs past the end of the file)")
        if kind == b"IHDR" and position != len(SIGNATURE):
            raise BadImage("the PNG has more than one IHDR chunk")
        if kind == b"IEND":
            image_data.finish()
            kept.append(_IEND)
            return b"".join(kept)
        body = view[position + 8 : end - 4]
        if kind == b"IDAT":
            image_data.feed(body)
        if kind in _KEPT and (kind != b"iCCP" or _profile_fits(body)):
            kept.append(view[position:end])
        position = end
    raise BadImage(f"the PNG has more than {MAX_CHUNKS} chunks")


class _BoundedInflate:
    """Inflates one zlib stream fed in pieces, holding at most `_STEP` bytes of output at a time; raises
    BadImage as soon as the output passes `expected` bytes or input follows the end of the stream."""

    def __init__(self, expected: int) -> None:
        self._inflater = zlib.decompressobj()
        self._expected = expected
        self._produced = 0

    def feed(self, compressed: memoryview) -> None:
        if self._inflater.eof and compressed:
            raise BadImage("the PNG's image data continues past the end of its zlib stream")
        pending: bytes | memoryview = compressed
        while not self._inflater.eof:
            room = min(_STEP, self._expected - self._produced + 1)
            try:
                out = self._inflater.decompress(pending, room)
            except zlib.error as exc:
                raise BadImage(f"the PNG's image data is not a valid zlib stream: {exc}") from exc
            self._produced += len(out)
            if self._produced > self._expected:
                raise BadImage(
                    f"the PNG's image data inflates to more than the {self._expected} bytes its header allows"
                )
            pending = self._inflater.unconsumed_tail
            if not pending and len(out) < room and not self._inflater.eof:
                return  # this piece is used up; the stream goes on in the next IDAT
        if self._inflater.unused_data:
            raise BadImage("the PNG's image data continues past the end of its zlib stream")

    def finish(self) -> None:
        if not self._inflater.eof or self._produced != self._expected:
            raise BadImage(f"the PNG's image data ends early ({self._produced} of {self._expected} bytes)")


def _profile_fits(body: memoryview) -> bool:
    """Whether an iCCP chunk (name, NUL, method 0, zlib profile) holds a profile within the limit; an
    oversized or broken one is dropped (and logged), as the image itself is still fine."""
    name_end = bytes(body[:81]).find(b"\x00")
    if name_end < 1 or len(body) < name_end + 2 or body[name_end + 1] != 0:
        logger.info("dropped a malformed ICC profile chunk")
        return False
    inflater = zlib.decompressobj()
    try:
        size = len(inflater.decompress(body[name_end + 2 :], MAX_ICC_PROFILE_BYTES + 1))
    except zlib.error:
        logger.info("dropped an ICC profile whose zlib data is broken")
        return False
    if size > MAX_ICC_PROFILE_BYTES:
        logger.info("dropped an ICC profile of more than %d bytes (the limit)", MAX_ICC_PROFILE_BYTES)
        return False
    return True
