"""Pure aggregation of several backends' lists into one catalog: filter, override, resolve conflicts, route.

Name resolution works on names alone (``resolve_names``), so ``validate`` can run it on the tools a manifest
declares and the gateway on what its backends list; both then agree on every collision and every dropped tool.
Order per backend: the filter (by the backend's own names), then the overrides, then the conflict strategy, then the
MCP tool-name rule (a name that breaks it is dropped with a warning rather than sent to clients that would refuse it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from toolhive_apply.proxy.vmcp_config import TOOL_NAME, Aggregation, Strategy

JsonObject = dict[str, Any]
PAGE_SIZE: Final = 100
"""Items per page of an aggregated list; a client follows ``nextCursor`` for the rest."""
_CURSOR: Final = re.compile(r"vmcp:([0-9]{1,9})")


@dataclass(frozen=True, slots=True)
class Route:
    """Where a resolved name goes: the backend, and the name (or URI) the backend itself knows it by."""

    backend: str
    name: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """``names[(backend, original)]`` is the exposed name of each kept tool; ``routes`` the reverse."""

    names: Mapping[tuple[str, str], str]
    routes: Mapping[str, Route]
    warnings: tuple[str, ...] = ()
    collisions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Manual strategy only: exposed names several backends still claim, with those backends (none is kept)."""
    invalid: tuple[tuple[str, str, str], ...] = ()
    """(backend, original, resolved) of names outside the MCP tool-name rule."""


def _local_names(backend: str, names: Sequence[str], config: Aggregation) -> list[tuple[str, str]]:
    """(original, name after the backend's filter and overrides)."""
    tools = config.for_backend(backend)
    kept = [n for n in names if tools.filter is None or n in tools.filter]
    return [(n, (tools.overrides.get(n) and tools.overrides[n].name) or n) for n in kept]


def _rank(config: Aggregation, order: Sequence[str]) -> dict[str, int]:
    """Priority: backends in ``priority_order`` first, in that order; the others after them, in group order."""
    listed = [b for b in config.priority_order if b in order]
    rest = [b for b in order if b not in listed]
    return {backend: index for index, backend in enumerate([*listed, *rest])}


def resolve_names(listings: Sequence[tuple[str, Sequence[str]]], config: Aggregation) -> Resolution:
    """Resolve the tool names of ``listings`` (backend, its tool names), backends in group order."""
    claims: dict[str, list[tuple[str, str]]] = {}
    for backend, offered in listings:
        prefix = config.prefix(backend) if config.strategy is Strategy.PREFIX else ""
        for original, local in _local_names(backend, offered, config):
            claims.setdefault(prefix + local, []).append((backend, original))
    rank = _rank(config, [backend for backend, _ in listings])
    names: dict[tuple[str, str], str] = {}
    warnings: list[str] = []
    collisions: dict[str, tuple[str, ...]] = {}
    invalid: list[tuple[str, str, str]] = []
    for resolved, claimants in claims.items():
        if len(claimants) > 1 and config.strategy is Strategy.MANUAL:
            collisions[resolved] = tuple(b for b, _ in claimants)
            warnings.append(f"tool {resolved!r} is offered by {', '.join(collisions[resolved])}: none is kept")
            continue
        ordered = sorted(claimants, key=lambda c: rank[c[0]]) if config.strategy is Strategy.PRIORITY else claimants
        winner, *losers = ordered
        for backend, _ in losers:
            warnings.append(f"tool {resolved!r} of {backend} is hidden by {winner[0]}'s")
        if not TOOL_NAME.fullmatch(resolved):
            invalid.append((winner[0], winner[1], resolved))
            warnings.append(f"tool {resolved[:140]!r} of {winner[0]} breaks the MCP tool-name rule: not offered")
            continue
        names[winner] = resolved
    routes = {resolved: Route(backend, original) for (backend, original), resolved in names.items()}
    return Resolution(names, routes, tuple(warnings), collisions, tuple(invalid))


@dataclass(frozen=True, slots=True)
class Listing:
    """What one backend offered at its last successful list."""

    backend: str
    tools: tuple[JsonObject, ...] = ()
    prompts: tuple[JsonObject, ...] = ()
    resources: tuple[JsonObject, ...] = ()
    templates: tuple[JsonObject, ...] = ()


@dataclass(frozen=True, slots=True)
class Catalog:
    """The gateway's aggregated view; routes map exposed names (or URIs) to their backends."""

    tools: tuple[JsonObject, ...] = ()
    prompts: tuple[JsonObject, ...] = ()
    resources: tuple[JsonObject, ...] = ()
    templates: tuple[JsonObject, ...] = ()
    tool_routes: Mapping[str, Route] = field(default_factory=dict)
    prompt_routes: Mapping[str, Route] = field(default_factory=dict)
    resource_routes: Mapping[str, str] = field(default_factory=dict)
    template_routes: tuple[tuple[str, str], ...] = ()
    """(the template's literal part before its first ``{``, backend), longest first."""
    warnings: tuple[str, ...] = ()

    def backend_of_uri(self, uri: str) -> str | None:
        if uri in self.resource_routes:
            return self.resource_routes[uri]
        return next((backend for stem, backend in self.template_routes if uri.startswith(stem)), None)


def _named(item: object) -> str | None:
    name = item.get("name") if isinstance(item, dict) else None
    return name if isinstance(name, str) else None


def aggregate(listings: Sequence[Listing], config: Aggregation) -> Catalog:
    """One catalog from the listings of the backends that are up, in group order."""
    resolution = resolve_names([(li.backend, [n for t in li.tools if (n := _named(t))]) for li in listings], config)
    tools: list[JsonObject] = []
    for listing in listings:
        overrides = config.for_backend(listing.backend).overrides
        for tool in listing.tools:
            original = _named(tool)
            resolved = resolution.names.get((listing.backend, original)) if original else None
            if original is None or resolved is None:
                continue
            exposed = {**tool, "name": resolved}
            rename = overrides.get(original)
            if rename is not None and rename.description is not None:
                exposed["description"] = rename.description
            tools.append(exposed)
    prompts, prompt_routes, prompt_warnings = _prompts(listings, config)
    resources, resource_routes = _by_key(listings, "resources", "uri")
    templates, template_owner = _by_key(listings, "templates", "uriTemplate")
    stems = sorted(((t.split("{", 1)[0], b) for t, b in template_owner.items()), key=lambda s: -len(s[0]))
    return Catalog(
        tuple(tools),
        prompts,
        resources,
        templates,
        resolution.routes,
        prompt_routes,
        resource_routes,
        tuple(stems),
        (*resolution.warnings, *prompt_warnings),
    )


def _prompts(
    listings: Sequence[Listing], config: Aggregation
) -> tuple[tuple[JsonObject, ...], dict[str, Route], list[str]]:
    """Prompts take the prefix under ``prefix``; otherwise the first backend (by priority) keeps a shared name."""
    rank = _rank(config, [li.backend for li in listings])
    ordered = sorted(listings, key=lambda li: rank[li.backend]) if config.strategy is Strategy.PRIORITY else listings
    prompts: list[JsonObject] = []
    routes: dict[str, Route] = {}
    warnings: list[str] = []
    for listing in ordered:
        prefix = config.prefix(listing.backend) if config.strategy is Strategy.PREFIX else ""
        for prompt in listing.prompts:
            original = _named(prompt)
            if original is None:
                continue
            exposed = prefix + original
            if exposed in routes:
                warnings.append(f"prompt {exposed!r} of {listing.backend} is hidden by {routes[exposed].backend}'s")
                continue
            routes[exposed] = Route(listing.backend, original)
            prompts.append({**prompt, "name": exposed})
    return tuple(prompts), routes, warnings


def _by_key(listings: Sequence[Listing], kind: str, key: str) -> tuple[tuple[JsonObject, ...], dict[str, str]]:
    """Resources (by URI) and templates (by URI template) are not renamed: the first backend offering one keeps it."""
    items: list[JsonObject] = []
    owner: dict[str, str] = {}
    for listing in listings:
        for item in getattr(listing, kind):
            value = item.get(key) if isinstance(item, dict) else None
            if isinstance(value, str) and value not in owner:
                owner[value] = listing.backend
                items.append(item)
    return tuple(items), owner


class CursorError(ValueError):
    """A cursor this gateway did not issue (or one from a list that has since shrunk)."""


def page(items: Sequence[JsonObject], cursor: object, size: int = PAGE_SIZE) -> tuple[list[JsonObject], str | None]:
    """One page of ``items`` from ``cursor`` (None = the start) and the cursor of the next page, if any."""
    start = 0
    if cursor is not None:
        match = _CURSOR.fullmatch(cursor) if isinstance(cursor, str) else None
        if match is None or int(match.group(1)) > len(items):
            raise CursorError("invalid cursor")
        start = int(match.group(1))
    end = start + size
    return list(items[start:end]), (f"vmcp:{end}" if end < len(items) else None)
