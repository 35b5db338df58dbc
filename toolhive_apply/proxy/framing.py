"""Undo Docker's stream multiplexing and split the MCP server's output into JSON-RPC lines.

An attached container without a TTY sends stdout and stderr over one connection, each frame prefixed with an 8-byte
header. Frames do not align with lines: one long reply spans many frames and one frame may end mid-line, so the
headers are stripped first and lines are split afterwards, per stream. Pure code, tested on data.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Final

_HEADER: Final = struct.Struct(">BxxxI")
HEADER_SIZE: Final = _HEADER.size
DEFAULT_MAX_LINE_BYTES: Final = 64 * 1024 * 1024


class StreamType(IntEnum):
    STDIN = 0
    STDOUT = 1
    STDERR = 2


class FramingError(ValueError):
    """The attach stream is not in Docker's multiplexed format (a TTY container, or a corrupt stream)."""


def encode_frame(stream: StreamType, payload: bytes) -> bytes:
    """One frame as Docker writes it; used by tests and by nothing on the wire path."""
    return _HEADER.pack(stream, len(payload)) + payload


class StreamDemuxer:
    """Incremental decoder for Docker's ``[stream, 0, 0, 0, size(4, big-endian)] + payload`` frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[StreamType, bytes]]:
        """Add bytes from the socket; return the frames completed by them, in order."""
        self._buffer += data
        frames: list[tuple[StreamType, bytes]] = []
        while len(self._buffer) >= HEADER_SIZE:
            kind, size = _HEADER.unpack_from(self._buffer)
            if kind not in (StreamType.STDIN, StreamType.STDOUT, StreamType.STDERR) or any(self._buffer[1:4]):
                header = bytes(self._buffer[:HEADER_SIZE]).hex()
                raise FramingError(f"bad frame header {header}: is the container a TTY?")
            end = HEADER_SIZE + size
            if len(self._buffer) < end:
                break
            frames.append((StreamType(kind), bytes(self._buffer[HEADER_SIZE:end])))
            del self._buffer[:end]
        return frames

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held back until the rest arrives."""
        return len(self._buffer)


class LineSplitter:
    """Incremental newline splitter for one stream.

    Blank lines are dropped and a trailing ``\\r`` is removed. A line longer than ``max_line_bytes`` is discarded up to
    its newline (counted in ``dropped``) instead of growing memory without bound.
    """

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_line_bytes
        self._skipping = False
        self.dropped = 0

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while (newline := data.find(b"\n", start)) != -1:
            piece = data[start:newline]
            start = newline + 1
            if self._skipping:
                self._skipping = False
                continue
            self._buffer += piece
            line = bytes(self._buffer).rstrip(b"\r")
            self._buffer.clear()
            if line.strip():
                lines.append(line)
        if not self._skipping:
            self._buffer += data[start:]
            if len(self._buffer) > self._max:
                self._buffer.clear()
                self._skipping = True
                self.dropped += 1
        return lines

    def flush(self) -> bytes:
        """The unterminated remainder (at end of stream), and reset."""
        rest = b"" if self._skipping else bytes(self._buffer).rstrip(b"\r")
        self._buffer.clear()
        self._skipping = False
        return rest
