"""The seam through which the authentication layer tells audit and tracing who made a request.

The authentication layer puts its verified ``Principal(subject, claims)`` into ``request.context[PRINCIPAL]`` (the
context dict is shared by every copy of the request, so a layer further in can set it and the observer, further
out, still reads it after the answer). Nothing is there for an anonymous request: audit then names the client
address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from toolhive_apply.proxy.httpserver import Request

PRINCIPAL: Final = "principal"
ANONYMOUS: Final = "anonymous"  # ToolHive's subjects.user for a request without identity


def principal_subjects(request: Request) -> dict[str, str]:
    """ToolHive's audit ``subjects``: user_id (the token's sub) and user (name, preferred_username or email), or
    ``{"user": "anonymous"}``."""
    principal = request.context.get(PRINCIPAL, getattr(request, "principal", None))
    subject = getattr(principal, "subject", None)
    if not isinstance(subject, str) or not subject:
        return {"user": ANONYMOUS}
    claims = getattr(principal, "claims", None)
    claims = claims if isinstance(claims, Mapping) else {}
    user = next((claims[k] for k in ("name", "preferred_username", "email") if isinstance(claims.get(k), str)), "")
    subjects = {"user_id": subject, "user": user or subject}
    for key in ("client_name", "client_version"):
        if isinstance(claims.get(key), str) and claims[key]:
            subjects[key] = claims[key]
    return subjects


def principal_label(request: Request) -> str:
    """Who made the request, in one string: the token's subject, else the client address."""
    subjects = principal_subjects(request)
    return subjects.get("user_id") or request.peer or ANONYMOUS
