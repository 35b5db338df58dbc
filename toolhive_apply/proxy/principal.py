"""Who made a request, as the proxy verified it: read by authorization (Cedar), audit and tracing.

One home for the shape: ``Principal(subject, claims)``, frozen, or None when the endpoint is anonymous. The claims
are the verified token's (JWT payload or introspection answer), never the raw token. The authentication layer sets
it on the request it passes inward and also in ``request.context[PRINCIPAL]`` (the context dict is shared by every
copy of the request), so the observer, further out, still reads it after the answer. Nothing is there for an
anonymous request: audit then names the client address.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from toolhive_apply.proxy.httpserver import Request

PRINCIPAL: Final = "principal"
ANONYMOUS: Final = "anonymous"  # ToolHive's subjects.user for a request without identity


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller: ``subject`` is the token's ``sub`` (required: never ``client_id``, which lives in
    another namespace, so a client named like a user must not become that user)."""

    subject: str
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, subject: str, claims: Mapping[str, Any]) -> Principal:
        return cls(subject, MappingProxyType(dict(claims)))


def principal_of(request: Request) -> Principal | None:
    found = request.principal or request.context.get(PRINCIPAL)
    return found if isinstance(found, Principal) else None


def principal_subjects(request: Request) -> dict[str, str]:
    """ToolHive's audit ``subjects``: user_id (the token's sub) and user (name, preferred_username or email), or
    ``{"user": "anonymous"}``."""
    principal = principal_of(request)
    if principal is None or not principal.subject:
        return {"user": ANONYMOUS}
    claims = principal.claims
    user = next((claims[k] for k in ("name", "preferred_username", "email") if isinstance(claims.get(k), str)), "")
    subjects = {"user_id": principal.subject, "user": user or principal.subject}
    for key in ("client_name", "client_version"):
        if isinstance(claims.get(key), str) and claims[key]:
            subjects[key] = claims[key]
    return subjects


def principal_label(request: Request) -> str:
    """Who made the request, in one string: the token's subject, else the client address."""
    subjects = principal_subjects(request)
    return subjects.get("user_id") or request.peer or ANONYMOUS
