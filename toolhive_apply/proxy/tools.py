"""ToolHive's tool filter and override, applied to ``tools/list`` results and ``tools/call`` requests.

Semantics follow ToolHive (``pkg/mcp/tool_filter.go``): the override is applied first (rename, re-describe), then the
allow-list is matched against the user-facing name. Hidden tools are absent from ``tools/list`` and calling them
fails with "tool not found"; a call to an overridden name is translated back to the server's own name.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from toolhive_apply.proxy.config import ProxyConfig, ToolOverride
from toolhive_apply.proxy.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    JsonObject,
    error_response,
    key_problem,
    params_of,
)

_TOOL_KEYS: Final = ("name", "description")
_RESULT_KEYS: Final = ("tools",)


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    """Invariant: no two tools share a user-facing name (config validation rejects such overrides)."""

    allow: frozenset[str] | None = None
    overrides: Mapping[str, ToolOverride] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: ProxyConfig) -> ToolPolicy:
        return cls(allow=config.tools, overrides=config.tools_override)

    @property
    def active(self) -> bool:
        """Whether the policy changes anything; when it does not, messages are passed untouched."""
        return self.allow is not None or bool(self.overrides)

    def visible_name(self, actual: str) -> str:
        override = self.overrides.get(actual)
        return override.name if override is not None and override.name else actual

    def is_allowed(self, visible: str) -> bool:
        return self.allow is None or visible in self.allow

    def _renamed_to(self) -> dict[str, str]:
        return {o.name: actual for actual, o in self.overrides.items() if o.name and o.name != actual}

    def resolve_call(self, name: str) -> str | None:
        """The server's name for the tool a client called ``name``, or None if no visible tool has that name."""
        renamed_to = self._renamed_to()
        if name in renamed_to:
            actual = renamed_to[name]
        elif self.visible_name(name) != name:
            return None  # the server's name of a renamed tool is hidden behind the new name
        else:
            actual = name
        return actual if self.is_allowed(name) else None

    def rewrite_tool(self, tool: object) -> object | None:
        """The tool as clients see it, or None when it is hidden. Entries the proxy cannot name beyond doubt (no
        string ``name``, or a second key a case-insensitive client would read as ``name``) are hidden too."""
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or key_problem(tool, _TOOL_KEYS, ""):
            return None
        actual: str = tool["name"]
        visible = self.visible_name(actual)
        if visible == actual and actual in self._renamed_to():
            return None  # another tool was renamed onto this name; the override wins, as in resolve_call
        if not self.is_allowed(visible):
            return None
        override = self.overrides.get(actual)
        if override is None:
            return tool
        rewritten = dict(tool)
        rewritten["name"] = visible
        if override.description is not None:
            rewritten["description"] = override.description
        return rewritten

    def rewrite_list_result(self, response: JsonObject) -> JsonObject:
        """A ``tools/list`` response with hidden tools removed and overrides applied; errors pass through."""
        result = response.get("result")
        if not self.active or not isinstance(result, dict):
            return response
        if key_problem(result, _RESULT_KEYS, "") or not isinstance(result.get("tools", []), list):
            return error_response(response.get("id"), INTERNAL_ERROR, "the server's tools/list result is malformed")
        tools = [t for t in (self.rewrite_tool(tool) for tool in result.get("tools", [])) if t is not None]
        return {**response, "result": {**result, "tools": tools}}

    def rewrite_call(self, request: JsonObject) -> tuple[JsonObject | None, JsonObject | None]:
        """For a ``tools/call`` request: ``(request to forward, None)`` or ``(None, error response to return)``."""
        if not self.active:
            return request, None
        params = params_of(request)
        name = params.get("name")
        if not isinstance(name, str) or not isinstance(request.get("params"), dict):
            return None, error_response(request.get("id"), INVALID_PARAMS, "tools/call needs a string params.name")
        actual = self.resolve_call(name)
        if actual is None:
            return None, error_response(request.get("id"), INVALID_PARAMS, f"tool not found: {name}")
        if actual == name:
            return request, None
        forwarded = copy.copy(request)
        forwarded["params"] = {**params, "name": actual}
        return forwarded, None
