"""Server-Sent Events encoding and incremental decoding (the WHATWG event-stream format).

The proxy both serves SSE (legacy transport, GET streams) and reads it from upstream servers (streamable-HTTP
responses, legacy streams) to filter ``tools/list`` answers, so both directions live here, tested on data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

KEEPALIVE: Final = b": keepalive\n\n"
DEFAULT_MAX_EVENT_BYTES: Final = 64 * 1024 * 1024


class EventTooLargeError(ValueError):
    """An upstream event grew past the limit without ending; the stream is abandoned."""


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


def encode_event(event: ServerSentEvent) -> bytes:
    """One event in wire form; multi-line data becomes several ``data:`` lines as the format requires."""
    lines = [f"event: {event.event}"]  # explicit even for "message": some clients dispatch on the name only
    if event.id is not None:
        lines.append(f"id: {event.id}")
    if event.retry is not None:
        lines.append(f"retry: {event.retry}")
    lines.extend(f"data: {line}" for line in event.data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


class SseDecoder:
    """Feed bytes, get complete events. Comments are skipped; ``\\r\\n``, ``\\r`` and ``\\n`` all end lines."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._pending = b""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._size = 0
        self._max = max_event_bytes
        self._comments = 0

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        buffer = self._pending + chunk
        hold = b""
        if buffer.endswith(b"\r"):
            buffer, hold = buffer[:-1], b"\r"  # maybe the first half of CRLF: decide with the next chunk
        lines = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self._pending = lines.pop() + hold
        events = [e for e in (self._line(raw.decode("utf-8", errors="replace")) for raw in lines) if e is not None]
        if len(self._pending) + self._size > self._max:
            raise EventTooLargeError(f"server-sent event larger than {self._max} bytes")
        return events

    def take_comments(self) -> int:
        """Comment lines (keep-alives) seen since the last call, so a relay can keep idle streams alive too."""
        count, self._comments = self._comments, 0
        return count

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self._comments += 1
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
            self._size += len(value) + 1
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        """End of an event. Unlike a browser, the id is not carried over to later events: the proxy re-emits
        events one by one and must not stamp an id on events that had none."""
        event = None
        if self._data:
            event = ServerSentEvent("\n".join(self._data), self._event or "message", self._id, self._retry)
        self._data, self._event, self._id, self._retry, self._size = [], "", None, None, 0
        return event
