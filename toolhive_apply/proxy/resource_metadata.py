"""OAuth 2.0 Protected Resource Metadata (RFC 9728) for an authenticated endpoint, and the 401 that points to it.

MCP authorization (2025-06-18, 2025-11-25): a client without a valid token gets 401 with
``WWW-Authenticate: Bearer resource_metadata="<metadata URL>"`` (and ``scope``), fetches the metadata, finds the
authorization server in ``authorization_servers`` and asks it for a token whose audience is ``resource``.
The metadata URL is RFC 9728 §3.1's: ``/.well-known/oauth-protected-resource`` inserted between the host and the
resource's path. The root form and the path-appended form (``<path>/.well-known/...``) are served too, because
clients in the field try each of them.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final
from urllib.parse import urlsplit

from toolhive_apply.proxy.auth_config import OidcConfig
from toolhive_apply.proxy.httpserver import Request, Response, json_response

WELL_KNOWN: Final = "/.well-known/oauth-protected-resource"


def resource_url(oidc: OidcConfig, request: Request) -> str:
    """The configured public URL of the endpoint, else one built from ``Host`` (which the Host guard allowed)."""
    if oidc.resource_url:
        return oidc.resource_url.rstrip("/") if urlsplit(oidc.resource_url).path not in ("", "/") else oidc.resource_url
    host = request.headers.get("host") or "localhost"
    return f"http://{host}/mcp"


def metadata_url(resource: str) -> str:
    parts = urlsplit(resource)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{path}"


def is_metadata_path(path: str) -> bool:
    return path.rstrip("/") == WELL_KNOWN or path.startswith(WELL_KNOWN + "/") or path.endswith(WELL_KNOWN)


def metadata_response(oidc: OidcConfig, request: Request) -> Response:
    resource = resource_url(oidc, request)
    if request.method not in ("GET", "HEAD"):
        return Response(HTTPStatus.METHOD_NOT_ALLOWED, [("Allow", "GET, HEAD")])
    document: dict[str, object] = {
        "resource": resource,
        "authorization_servers": [oidc.issuer],
        "bearer_methods_supported": ["header"],
        "scopes_supported": list(oidc.scopes),
    }
    return json_response(HTTPStatus.OK, document, [("Cache-Control", "max-age=300")])


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge(oidc: OidcConfig, request: Request, error: str | None = None) -> str:
    """The ``WWW-Authenticate`` value for a 401 (RFC 6750 §3, RFC 9728 §5.1)."""
    parts = [f"resource_metadata={_quoted(metadata_url(resource_url(oidc, request)))}"]
    if oidc.scopes:
        parts.append(f"scope={_quoted(' '.join(oidc.scopes))}")
    if error is not None:
        parts.append(f"error={_quoted(error)}")
    return "Bearer " + ", ".join(parts)
