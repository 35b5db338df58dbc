"""Docker stream demultiplexing and JSON-line splitting, on bytes (no Docker)."""

from __future__ import annotations

import json

import pytest

from toolhive_apply.proxy.framing import (
    FramingError,
    LineSplitter,
    StreamDemuxer,
    StreamType,
    encode_frame,
)


def feed_in_pieces(data: bytes, size: int) -> list[tuple[StreamType, bytes]]:
    demuxer = StreamDemuxer()
    frames: list[tuple[StreamType, bytes]] = []
    for start in range(0, len(data), size):
        frames.extend(demuxer.feed(data[start : start + size]))
    assert demuxer.buffered == 0
    return frames


@pytest.mark.parametrize("piece", [1, 3, 7, 8, 9, 4096])
def test_frames_come_out_whole_however_the_socket_splits_them(piece: int) -> None:
    wire = encode_frame(StreamType.STDOUT, b'{"a":1}\n') + encode_frame(StreamType.STDERR, b"warn\n")
    wire += encode_frame(StreamType.STDOUT, b"")
    frames = feed_in_pieces(wire, piece)
    assert frames == [(StreamType.STDOUT, b'{"a":1}\n'), (StreamType.STDERR, b"warn\n"), (StreamType.STDOUT, b"")]


def test_a_long_reply_spanning_frames_is_one_line_once_headers_are_stripped() -> None:
    reply = json.dumps({"jsonrpc": "2.0", "id": 7, "result": {"text": "x" * 50_000}}).encode() + b"\n"
    wire = b"".join(encode_frame(StreamType.STDOUT, reply[i : i + 16384]) for i in range(0, len(reply), 16384))
    demuxer, lines = StreamDemuxer(), LineSplitter()
    for start in range(0, len(wire), 1000):
        for _, payload in demuxer.feed(wire[start : start + 1000]):
            lines_out = lines.feed(payload)
            for line in lines_out:
                assert json.loads(line)["id"] == 7
    # exactly one complete line, and it parsed (asserted above); nothing left over
    assert lines.flush() == b""


def test_a_frame_can_end_mid_line_and_hold_several_lines() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"id":1}\n{"id"') == [b'{"id":1}']
    assert splitter.feed(b':2}\r\n\n{"id":3}\n') == [b'{"id":2}', b'{"id":3}']


def test_stdout_and_stderr_are_kept_apart() -> None:
    wire = encode_frame(StreamType.STDOUT, b'{"id":') + encode_frame(StreamType.STDERR, b"log line\n")
    wire += encode_frame(StreamType.STDOUT, b"1}\n")
    out, err = LineSplitter(), LineSplitter()
    got_out: list[bytes] = []
    got_err: list[bytes] = []
    for kind, payload in StreamDemuxer().feed(wire):
        (got_out if kind is StreamType.STDOUT else got_err).extend(
            (out if kind is StreamType.STDOUT else err).feed(payload)
        )
    assert got_out == [b'{"id":1}']
    assert got_err == [b"log line"]


def test_a_tty_stream_is_rejected_instead_of_misread() -> None:
    with pytest.raises(FramingError, match="TTY"):
        StreamDemuxer().feed(b'{"jsonrpc":"2.0","id":1}\n')


def test_an_oversized_line_is_dropped_up_to_its_newline_and_counted() -> None:
    splitter = LineSplitter(max_line_bytes=10)
    assert splitter.feed(b"0123456789ABCDEF") == []
    assert splitter.feed(b"still the same line\nok\n") == [b"ok"]
    assert splitter.dropped == 1
