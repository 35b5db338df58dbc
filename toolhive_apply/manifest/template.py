"""Jinja2 templating of manifest strings, Ansible-style, after YAML parsing.

Rendering parsed strings (never the raw file) means a template can change a value but never the
structure of the manifest. The sandbox and StrictUndefined turn escapes and typos into errors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from toolhive_apply.errors import ManifestIssue
from toolhive_apply.manifest.loader import FieldPath, Positions

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}\s*$", re.DOTALL)
_MARKERS = ("{{", "{%", "{#")
_JSON_TYPES = (str, int, float, bool, list, dict, type(None))


class _MissingEnv(jinja2.TemplateError):
    """env('X') without a default, and X is not set."""


def _env_function(environ: Mapping[str, str]) -> Callable[..., str]:
    def env(name: str, default: str | None = None) -> str:
        value = environ.get(name, default)
        if value is None:
            msg = f"environment variable {name} is not set (and env() was given no default)"
            raise _MissingEnv(msg)
        return value

    return env


MAX_RESULT_ITEMS = 100_000


class _BoundedSandbox(SandboxedEnvironment):
    """The sandbox, plus bounds on `*` and `**` so a template cannot exhaust memory or CPU."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, (int, float)) and abs(right) > 64:
                raise jinja2.exceptions.SecurityError("exponent too large for a manifest value")
            return left**right
        for sized, count in ((left, right), (right, left)):
            too_big = (
                isinstance(sized, (str, list, tuple))
                and isinstance(count, int)
                and len(sized) * count > MAX_RESULT_ITEMS
            )
            if too_big:
                raise jinja2.exceptions.SecurityError("repetition too large for a manifest value")
        return left * right


class Renderer:
    """Renders every string of a loaded manifest in one sandbox, collecting errors with positions."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.sandbox = _BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=False)
        self.sandbox.globals["env"] = _env_function(os.environ if environ is None else environ)
        self.issues: list[ManifestIssue] = []

    def render_value(self, value: str, context: Mapping[str, Any]) -> Any:
        """A lone `{{ expr }}` keeps its native type (so ports stay integers); other strings stay strings."""
        single = _SINGLE_EXPRESSION.match(value)
        if single:
            expression = self.sandbox.compile_expression(single.group("expr"), undefined_to_none=False)
            result = expression(**context)
            if isinstance(result, jinja2.Undefined):
                result._fail_with_undefined_error()
            return result if isinstance(result, _JSON_TYPES) else str(result)
        return self.sandbox.from_string(value).render(**context)

    def render_tree(self, node: Any, path: FieldPath, where: tuple[Positions, Mapping[str, Any]]) -> Any:
        positions, context = where
        if isinstance(node, dict):
            return {key: self.render_tree(item, (*path, key), where) for key, item in node.items()}
        if isinstance(node, list):
            return [self.render_tree(item, (*path, index), where) for index, item in enumerate(node)]
        if isinstance(node, str) and any(marker in node for marker in _MARKERS):
            try:
                return self.render_value(node, context)
            except jinja2.TemplateError as exc:
                self.issues.append(positions.issue(path, f"template error: {_describe(exc)}"))
                return node
            except Exception as exc:  # noqa: BLE001 - a template may fail any way Python can (1/0, range overflow)
                self.issues.append(positions.issue(path, f"template error: {type(exc).__name__}: {exc}"))
                return node
        return node


def _describe(exc: jinja2.TemplateError) -> str:
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"refused by the sandbox: {exc.message}"
    if isinstance(exc, jinja2.UndefinedError):
        return f"{exc.message} (define it under vars, with --var or --var-file)"
    return exc.message or type(exc).__name__


def render_manifest(
    data: dict[str, Any],
    positions: Positions,
    extra_vars: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], list[ManifestIssue]]:
    """Render vars first (each may use env() and the vars before it), then every other string.

    Command-line vars win over manifest vars, as `--extra-vars` does in Ansible.
    """
    renderer = Renderer(environ)
    raw_vars = data.get("vars")
    context: dict[str, Any] = {}
    if isinstance(raw_vars, dict):
        for key, value in raw_vars.items():
            if key in extra_vars:
                continue
            context[str(key)] = renderer.render_tree(value, ("vars", key), (positions, context))
    context.update(extra_vars)
    rendered = {
        key: (value if key == "vars" else renderer.render_tree(value, (key,), (positions, context)))
        for key, value in data.items()
    }
    if isinstance(raw_vars, dict):
        rendered["vars"] = {**{k: context.get(k, v) for k, v in raw_vars.items()}}
    return rendered, renderer.issues
