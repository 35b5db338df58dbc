"""Who made a request, as the proxy verified it: read by authorization (Cedar) and by the audit log.

One home for the shape: ``Principal(subject, claims)``, frozen, or None on the request when the endpoint is
anonymous. The claims are the verified token's (JWT payload or introspection answer), never the raw token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller: ``subject`` is the token's ``sub`` (``client_id`` when an introspected token has none)."""

    subject: str
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, subject: str, claims: Mapping[str, Any]) -> Principal:
        return cls(subject, MappingProxyType(dict(claims)))
