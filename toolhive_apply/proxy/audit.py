"""Audit events in ToolHive's shape (pkg/audit: the slog JSON line its AuditEvent.LogTo writes), one per operation.

Written as JSON lines to the proxy's stdout (docker logs) or to ``logFile`` (a host directory mounted into the
container). Request and response data are recorded only when asked for, scrubbed of every secret the proxy holds,
then cut at ``maxDataSize``: scrubbing first means a cut can never leave the front half of a secret readable.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import sys
import threading
import uuid
from pathlib import Path
from typing import IO, Any, Final

from toolhive_apply.proxy.observe_config import AuditConfig
from toolhive_apply.proxy.operations import SSE_CONNECTION, TARGET_TYPES, Exchange, Outcome
from toolhive_apply.proxy.scrub import Scrubber

LEVEL_AUDIT: Final = "INFO+2"  # how Go's slog JSON handler prints ToolHive's LevelAudit (slog.Level(2))
MESSAGE: Final = "audit_event"


def _timestamp(moment: datetime.datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class AuditLog:
    """Turns exchanges into events and writes them, one line each (a line is written whole or not at all)."""

    def __init__(self, config: AuditConfig, scrubber: Scrubber, transport: str, stream: IO[str] | None = None) -> None:
        self.config = config
        self._scrubber = scrubber
        self._transport = "sse" if transport == "sse" else "http"
        self._lock = threading.Lock()
        self._owned = stream is None and config.log_file is not None
        if stream is not None:
            self._stream: IO[str] = stream
        elif config.log_file is not None:
            self._stream = Path(config.log_file).open("a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        else:
            self._stream = sys.stdout

    def close(self) -> None:
        if self._owned:
            with contextlib.suppress(OSError):
                self._stream.close()

    def record(self, exchange: Exchange, source: dict[str, Any], subjects: dict[str, str], endpoint: str) -> None:
        event_type = exchange.operation.event_type
        if not self.config.wants(event_type):
            return
        line = json.dumps(self.event(exchange, source, subjects, endpoint), separators=(",", ":"), default=str)
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._stream.write(line + "\n")
            self._stream.flush()

    def event(
        self, exchange: Exchange, source: dict[str, Any], subjects: dict[str, str], endpoint: str
    ) -> dict[str, Any]:
        operation, ending = exchange.operation, exchange.ending
        now = datetime.datetime.now(datetime.UTC)
        target = {"endpoint": endpoint, "method": operation.method or "unknown"}
        target["type"] = (
            "sse_endpoint" if operation.event == SSE_CONNECTION else TARGET_TYPES.get(operation.method, "endpoint")
        )
        if operation.name is not None:
            target["name"] = operation.name
        extra: dict[str, Any] = {
            "duration_ms": int(exchange.duration * 1000),
            "transport": self._transport,
            "request_size_bytes": operation.size,
            "response_size_bytes": ending.size,
            "status_code": ending.status,
            **exchange.extra,
        }
        if ending.outcome is Outcome.APPLICATION_ERROR:
            extra["jsonrpc_error_code"] = ending.error_code
            extra["jsonrpc_error_message"] = ending.error_message
        if ending.status == 401:
            extra["reason"] = "unauthenticated"
        event: dict[str, Any] = {
            "time": _timestamp(now),
            "level": LEVEL_AUDIT,
            "msg": MESSAGE,
            "audit_id": str(uuid.uuid4()),
            "type": operation.event_type,
            "logged_at": _timestamp(now),
            "outcome": str(ending.outcome),
            "component": self.config.component,
            "source": source,
            "subjects": subjects,
            "target": target,
            "metadata": {"extra": extra},
        }
        data = self._data(exchange)
        if data:
            event["data"] = data
        return self._scrubber.value(event)  # type: ignore[no-any-return]

    def _data(self, exchange: Exchange) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.config.include_request_data and exchange.operation.message is not None:
            data.update(self._bounded("request", exchange.operation.message))
        if self.config.include_response_data and exchange.ending.response is not None:
            data.update(self._bounded("response", exchange.ending.response))
        return data

    def _bounded(self, key: str, message: object) -> dict[str, Any]:
        """The message as JSON when it fits ``maxDataSize`` once scrubbed, else its first bytes as text."""
        clean = self._scrubber.value(message)
        text = clean if isinstance(clean, str) else json.dumps(clean, separators=(",", ":"), ensure_ascii=False)
        encoded = text.encode()
        if len(encoded) <= self.config.max_data_size:
            return {key: clean}
        cut = encoded[: self.config.max_data_size].decode("utf-8", "ignore")
        return {key: cut, f"{key}_truncated": True}
