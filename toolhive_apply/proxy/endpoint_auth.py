"""What stands between a client and the MCP front-end when the endpoint has ``auth``: the protected-resource
metadata, authentication (401) and authorization (Cedar), in that order. One hook in ``app.Router``.

``/health`` and CORS preflights are answered before this (Docker's health check and browsers carry no token).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus

from toolhive_apply.proxy.auth_config import AuthConfig
from toolhive_apply.proxy.authn import Authenticator
from toolhive_apply.proxy.httpserver import Request, Response, StreamResponse, rpc_error
from toolhive_apply.proxy.jsonrpc import INVALID_REQUEST
from toolhive_apply.proxy.resource_metadata import is_metadata_path, metadata_response

Next = Callable[[Request], Awaitable[Response | StreamResponse]]


class EndpointAuth:
    def __init__(self, config: AuthConfig) -> None:
        self.authenticator = Authenticator(config.oidc) if config.oidc is not None else None
        self.authorizer = None
        if config.authz is not None:
            from toolhive_apply.proxy.authz import Authorizer

            self.authorizer = Authorizer.from_config(config.authz)

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
        if self.authorizer is not None:
            return await self.authorizer.handle(request, forward)
        return await forward(request)
