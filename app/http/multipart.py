"""One file part of a multipart/form-data body, read into memory as the body streams in.

Starlette's form parser spools every file part over 1 MB to a temporary file and keeps every part;
here the body is parsed with python-multipart's streaming parser and only the wanted part's bytes are
kept, in memory, where the request's memory reservation counts them (the body itself is bounded by
the upload limit in `app.http.middleware`). Other parts are counted and their data dropped.
"""

from __future__ import annotations

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from app.errors import ClientDisconnected, MalformedRequest


class _Collector:
    """python-multipart callbacks that keep the data of the first file part named `name`."""

    def __init__(self, name: str, max_files: int, max_fields: int) -> None:
        self.name, self.max_files, self.max_fields = name, max_files, max_fields
        self.files = self.fields = 0
        self.data: bytearray | None = None
        # Set by the closing delimiter: python-multipart's finalize() does not check that the body got there,
        # so a body cut short (its last part's data taken as whole) would otherwise pass.
        self.ended = False
        self._collecting = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._collecting = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if bytes(self._header_name).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name")
        if name is None:
            raise MalformedRequest('malformed multipart body: a part has no Content-Disposition "name"')
        if b"filename" not in options:
            self.fields += 1
            if self.fields > self.max_fields:
                raise MalformedRequest(f"malformed multipart body: more than {self.max_fields} fields")
            return
        self.files += 1
        if self.files > self.max_files:
            raise MalformedRequest(f"malformed multipart body: more than {self.max_files} files")
        if name.decode("latin-1") == self.name and self.data is None:
            self.data = bytearray()
            self._collecting = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._collecting:
            assert self.data is not None
            self.data += data[start:end]

    def on_part_end(self) -> None:
        self._collecting = False

    def on_end(self) -> None:
        self.ended = True


async def read_file_part(request: Request, name: str, *, max_files: int, max_fields: int) -> bytes | None:
    """The bytes of the file part `name` of the request's multipart/form-data body, or None without one.

    Raises MalformedRequest (400) for a body that is not valid multipart, has no boundary, ends before its
    closing boundary, or has more files or fields than allowed; ClientDisconnected when the client leaves
    during the upload.
    """
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise MalformedRequest("malformed multipart body: the Content-Type has no boundary")
    collector = _Collector(name, max_files, max_fields)
    callbacks = {event: getattr(collector, event) for event in (
        "on_part_begin", "on_header_field", "on_header_value", "on_header_end", "on_headers_finished",
        "on_part_data", "on_part_end", "on_end")}
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise MalformedRequest(f"malformed multipart body: {exc}") from exc
    except ClientDisconnect:
        raise ClientDisconnected() from None
    if not collector.ended:
        raise MalformedRequest("malformed multipart body: it ends before its closing boundary")
    return None if collector.data is None else bytes(collector.data)
