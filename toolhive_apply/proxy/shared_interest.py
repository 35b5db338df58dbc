"""Shared mode: which clients a server notification is for, where the protocol lets the proxy know.

A stdio server cannot say whom a notification is for: it has one client, the proxy. Progress is routed by token
(``mux.py``). Two more kinds depend on what a client asked for, and are kept per client here so one client can
neither change nor see what another asked for:

* logging: ``logging/setLevel`` is answered by the proxy and never forwarded (it would change the level of every
  client); ``notifications/message`` goes only to the clients that set a level, at or above their own level. A
  client that never set one gets no log messages (MCP lets the server choose in that case);
* resource subscriptions: the server is subscribed while any client is (``resources/subscribe`` is forwarded for
  the first subscriber of a URI, ``resources/unsubscribe`` for the last), and ``notifications/resources/updated``
  goes only to that URI's subscribers.

Everything else (``list_changed`` notifications, anything unknown) is about the one shared server and goes to every
client. Pure bookkeeping, tested on data.
"""

from __future__ import annotations

from typing import Final

from toolhive_apply.proxy.jsonrpc import JsonObject, method_of, params_of

LOG_LEVELS: Final = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
"""RFC 5424 severities as MCP names them, least severe first."""
_SEVERITY: Final = {level: rank for rank, level in enumerate(LOG_LEVELS)}


class SharedInterest:
    def __init__(self) -> None:
        self._levels: dict[str, int] = {}
        self._subscribers: dict[str, set[str]] = {}

    def set_level(self, client: str, level: object) -> bool:
        """Record a client's logging level; False when ``level`` is not one of LOG_LEVELS."""
        if not isinstance(level, str) or level not in _SEVERITY:
            return False
        self._levels[client] = _SEVERITY[level]
        return True

    def subscribe(self, client: str, uri: str) -> bool:
        """Record a subscription; True when it is the URI's first, so the server must be asked."""
        subscribers = self._subscribers.setdefault(uri, set())
        first = not subscribers
        subscribers.add(client)
        return first

    def unsubscribe(self, client: str, uri: str) -> bool:
        """Drop a subscription; True when nobody else holds it, so the server must be told."""
        subscribers = self._subscribers.get(uri, set())
        subscribers.discard(client)
        if subscribers:
            return False
        self._subscribers.pop(uri, None)
        return True

    def forget(self, client: str) -> list[str]:
        """A session ended: its level and subscriptions go; returns the URIs nobody subscribes to any more."""
        self._levels.pop(client, None)
        orphaned = []
        for uri, subscribers in list(self._subscribers.items()):
            if client in subscribers:
                subscribers.discard(client)
                if not subscribers:
                    del self._subscribers[uri]
                    orphaned.append(uri)
        return orphaned

    def subscriptions(self) -> list[str]:
        """Every URI some client is subscribed to (to subscribe a restarted server again)."""
        return sorted(self._subscribers)

    def recipients(self, notification: JsonObject) -> list[str] | None:
        """The clients a server notification is for; None for every client."""
        method, params = method_of(notification), params_of(notification)
        if method == "notifications/message":
            severity = _SEVERITY.get(str(params.get("level")), len(LOG_LEVELS) - 1)
            return sorted(client for client, level in self._levels.items() if severity >= level)
        if method == "notifications/resources/updated":
            return sorted(self._subscribers.get(str(params.get("uri")), ()))
        return None
