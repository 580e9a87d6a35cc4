"""A multipart/form-data body read as a stream of events, so that an upload goes straight
into its own file: Starlette's form parser keeps each file under 1 MiB in memory (10,000 of
them would be 10 GiB) and copies the rest through the temp folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from search.errors import InvalidInput


@dataclass(frozen=True)
class PartStart:
    """A part begins; `filename` is None for a plain field (no `filename` parameter)."""

    field: str
    filename: str | None


@dataclass(frozen=True)
class PartEnd:
    """The part that began last is complete."""


PartEvent = PartStart | bytes | PartEnd
MALFORMED = "malformed multipart body; let the client (curl -F, a form) encode it"


async def multipart_events(
    content_type: str, body: AsyncIterator[bytes]
) -> AsyncIterator[PartEvent]:
    """`PartStart`, its data as `bytes` chunks, `PartEnd`, for each part in order.

    Raises InvalidInput for a body that is not well-formed multipart or ends early.
    """
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidInput("multipart body without a boundary; let the client set Content-Type")
    events: list[PartEvent] = []
    header_name, header_value = bytearray(), bytearray()
    disposition = b""
    ended = False

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        nonlocal disposition
        if header_name.lower() == b"content-disposition":
            disposition = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        nonlocal disposition
        _, params = parse_options_header(disposition)
        disposition = b""
        if b"name" not in params:
            raise InvalidInput("a multipart part has no Content-Disposition name")
        filename = params.get(b"filename")
        events.append(
            PartStart(_decode(params[b"name"]), None if filename is None else _decode(filename))
        )

    def on_part_data(data: bytes, start: int, end: int) -> None:
        events.append(data[start:end])

    def on_end() -> None:
        nonlocal ended
        ended = True

    try:
        parser = MultipartParser(
            boundary,
            {
                "on_header_field": on_header_field,
                "on_header_value": on_header_value,
                "on_header_end": on_header_end,
                "on_headers_finished": on_headers_finished,
                "on_part_data": on_part_data,
                "on_part_end": lambda: events.append(PartEnd()),
                "on_end": on_end,
            },
        )
    except FormParserError:
        raise InvalidInput(MALFORMED) from None
    async for chunk in body:
        try:
            parser.write(chunk)
        except FormParserError:
            raise InvalidInput(MALFORMED) from None
        for event in events:
            yield event
        events.clear()
    if not ended:
        raise InvalidInput("the multipart body ended before its closing boundary")


def _decode(raw: bytes) -> str:
    """A header parameter: the raw bytes are (by convention) UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"a multipart name is not UTF-8: {raw!r}") from None
