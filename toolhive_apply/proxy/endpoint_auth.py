"""What stands between a client and the MCP front-end when the endpoint has ``auth``: the protected-resource
metadata, authentication (401) and authorization (Cedar), in that order. One hook in ``app.Router``.

``/health`` and CORS preflights are answered before this (Docker's health check and browsers carry no token).

Sessions are bound to the subject that opened them (MCP security best practices: a session id is no credential):
the ``Mcp-Session-Id`` the server issues, or a legacy SSE ``session_id`` at its first authenticated use, belongs to
that subject, and another subject presenting it gets 404, as for an unknown session.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Final

from toolhive_apply.proxy.auth_config import AuthConfig
from toolhive_apply.proxy.authn import Authenticator
from toolhive_apply.proxy.httpserver import Request, Response, StreamResponse, rpc_error
from toolhive_apply.proxy.jsonrpc import INVALID_REQUEST
from toolhive_apply.proxy.resource_metadata import is_metadata_path, metadata_response

MAX_BOUND_SESSIONS: Final = 100_000
Next = Callable[[Request], Awaitable[Response | StreamResponse]]


class EndpointAuth:
    def __init__(self, config: AuthConfig) -> None:
        self.authenticator = Authenticator(config.oidc) if config.oidc is not None else None
        self.authorizer = None
        if config.authz is not None:
            from toolhive_apply.proxy.authz import Authorizer

            self.authorizer = Authorizer.from_config(config.authz)
        self._owners: OrderedDict[str, str] = OrderedDict()

    def _session_of(self, request: Request) -> str | None:
        return request.headers.get("mcp-session-id") or request.query.get("session_id") or None

    def _bind(self, session_id: str, subject: str) -> None:
        self._owners[session_id] = subject
        self._owners.move_to_end(session_id)
        while len(self._owners) > MAX_BOUND_SESSIONS:
            self._owners.popitem(last=False)

    async def handle(self, request: Request, forward: Next) -> Response | StreamResponse:
        if is_metadata_path(request.path):
            if self.authenticator is None:
                return rpc_error(HTTPStatus.NOT_FOUND, INVALID_REQUEST, "this endpoint needs no authorization")
            return metadata_response(self.authenticator.oidc, request)
        if self.authenticator is not None:
            outcome = await self.authenticator.authenticate(request)
            if isinstance(outcome, Response):
                return outcome
            request = outcome
            assert request.principal is not None
            subject = request.principal.subject
            session_id = self._session_of(request)
            if session_id is not None:
                owner = self._owners.get(session_id)
                if owner is not None and owner != subject:
                    return rpc_error(HTTPStatus.NOT_FOUND, INVALID_REQUEST, "Session not found")
                self._bind(session_id, subject)
        response = await (self.authorizer.handle(request, forward) if self.authorizer else forward(request))
        if request.principal is not None:
            issued = next((v for k, v in response.headers if k.lower() == "mcp-session-id"), None)
            if issued is not None and issued not in self._owners:
                self._bind(issued, request.principal.subject)
        return response
