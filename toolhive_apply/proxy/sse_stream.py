"""A client's event stream fed from a queue: the one loop behind every SSE stream the proxy serves.

Direct sessions (stdio), both bridges (SSE over streamable HTTP and streamable HTTP over SSE) and the legacy SSE
endpoint all hand messages to a bounded queue and stream it the same way: one ``message`` event per item, a
keep-alive comment after each quiet interval (so idle proxies and clients do not drop the connection), and the end
of the stream at ``None`` or when the session closes. A slow client that lets its queue fill loses the oldest
message, never the proxy's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any, Final

from toolhive_apply.proxy.sse_codec import KEEPALIVE, ServerSentEvent, encode_event

KEEPALIVE_INTERVAL: Final = 15.0
"""Seconds without a message after which a stream gets a keep-alive comment."""

_log = logging.getLogger(__name__)


def put_dropping_oldest(queue: asyncio.Queue[Any], item: object, who: str) -> None:
    """Queue an item for a stream; when a slow client let the queue fill, the oldest item goes (and is logged)."""
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
        _log.warning("%s: event queue full, dropped the oldest message", who)
    queue.put_nowait(item)


async def queued_events(
    queue: asyncio.Queue[Any], render: Callable[[Any], str], closed: Callable[[], bool] = lambda: False
) -> AsyncGenerator[bytes, None]:
    """Each queued item as one SSE ``message`` event (its data from ``render``), with keep-alives; ends at a
    queued ``None`` or once ``closed()`` holds."""
    while not closed():
        try:
            item = await asyncio.wait_for(queue.get(), KEEPALIVE_INTERVAL)
        except TimeoutError:
            yield KEEPALIVE
            continue
        if item is None:
            return
        yield encode_event(ServerSentEvent(render(item)))
