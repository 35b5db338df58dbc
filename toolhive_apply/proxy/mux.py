"""Share one JSON-RPC connection to a stdio MCP server between many HTTP clients.

Every client numbers its requests from 1, so ids collide. Each request forwarded to the server gets a fresh proxy id
(and a fresh progress token if it asked for progress); the answer is routed back to its client with the original id and
token restored. Pure bookkeeping with an opaque per-request ``waiter``, so it is tested on data without sockets.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Generic, TypeVar

from toolhive_apply.proxy.jsonrpc import JsonObject, RequestId, method_of, params_of

W = TypeVar("W")


class DuplicateRequestError(ValueError):
    """A client reused the id of one of its requests still in flight (JSON-RPC forbids that)."""


@dataclass(slots=True)
class Pending(Generic[W]):
    """A request forwarded to the server and not answered yet."""

    client: str
    original_id: RequestId
    proxy_id: int
    method: str
    waiter: W
    original_token: object = None
    proxy_token: int | None = None


class IdMultiplexer(Generic[W]):
    """Rewrites ids on the way to the server and routes answers back on the way out.

    Invariant: ``_pending``, ``_by_client`` and ``_tokens`` always describe the same set of requests.
    """

    def __init__(self) -> None:
        self._next = 1
        self._pending: dict[int, Pending[W]] = {}
        self._by_client: dict[tuple[str, RequestId], int] = {}
        self._tokens: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def _allocate(self) -> int:
        value = self._next
        self._next += 1
        return value

    def begin(self, client: str, message: JsonObject, waiter: W) -> JsonObject:
        """Record ``message`` (a request from ``client``) and return the copy to send to the server."""
        original_id: RequestId = message["id"]
        key = (client, original_id)
        if key in self._by_client:
            raise DuplicateRequestError(f"request id {original_id!r} is already in flight")
        outbound = copy.copy(message)
        pending = Pending(client, original_id, self._allocate(), method_of(message), waiter)
        outbound["id"] = pending.proxy_id
        meta = params_of(message).get("_meta")
        if isinstance(meta, dict) and "progressToken" in meta:
            pending.original_token = meta["progressToken"]
            pending.proxy_token = pending.proxy_id  # ids are unique, so they make unique tokens too
            outbound["params"] = {**params_of(message), "_meta": {**meta, "progressToken": pending.proxy_token}}
            self._tokens[pending.proxy_token] = pending.proxy_id
        self._pending[pending.proxy_id] = pending
        self._by_client[key] = pending.proxy_id
        return outbound

    def complete(self, response: JsonObject) -> tuple[Pending[W], JsonObject] | None:
        """The request a server response answers and the response as its client must see it; None if unknown."""
        proxy_id = response.get("id")
        if not isinstance(proxy_id, int) or isinstance(proxy_id, bool) or proxy_id not in self._pending:
            return None
        pending = self._forget(proxy_id)
        restored = copy.copy(response)
        restored["id"] = pending.original_id
        return pending, restored

    def abandon(self, client: str, original_id: RequestId) -> Pending[W] | None:
        """Forget a request its client gave up on; the caller tells the server with ``cancel_notice``."""
        proxy_id = self._by_client.get((client, original_id))
        return None if proxy_id is None else self._forget(proxy_id)

    def abandon_client(self, client: str) -> list[Pending[W]]:
        """Forget every request of a client that went away (session closed)."""
        ids = [proxy_id for (owner, _), proxy_id in self._by_client.items() if owner == client]
        return [self._forget(proxy_id) for proxy_id in ids]

    def drain(self) -> list[Pending[W]]:
        """Forget every pending request (the server connection is gone); the caller fails their waiters."""
        pending = list(self._pending.values())
        self._pending.clear()
        self._by_client.clear()
        self._tokens.clear()
        return pending

    def route_progress(self, notification: JsonObject) -> tuple[str, JsonObject] | None:
        """For ``notifications/progress`` from the server: the client it belongs to and the restored notification."""
        params = params_of(notification)
        token = params.get("progressToken")
        proxy_id = self._tokens.get(token) if isinstance(token, int) and not isinstance(token, bool) else None
        if proxy_id is None:
            return None
        pending = self._pending[proxy_id]
        restored = copy.copy(notification)
        restored["params"] = {**params, "progressToken": pending.original_token}
        return pending.client, restored

    def _forget(self, proxy_id: int) -> Pending[W]:
        pending = self._pending.pop(proxy_id)
        del self._by_client[(pending.client, pending.original_id)]
        if pending.proxy_token is not None:
            self._tokens.pop(pending.proxy_token, None)
        return pending


def cancel_notice(pending: Pending[W], reason: str) -> JsonObject:
    """The ``notifications/cancelled`` that tells the server to stop working on a forgotten request."""
    return {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": pending.proxy_id, "reason": reason},
    }
