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

from toolhive_apply.credentials import is_credential, manifest_credential_names, register_credentials
from toolhive_apply.errors import ManifestIssue
from toolhive_apply.manifest.loader import FieldPath, Positions
from toolhive_apply.manifest.markers import MARKERS
from toolhive_apply.manifest.sandbox import BoundedSandbox, Budget

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}\s*$", re.DOTALL)
_JSON_TYPES = (str, int, float, bool, list, dict, type(None))


class _MissingEnv(jinja2.TemplateError):
    """env('X') without a default, and X is not set."""


class _RefusedEnv(jinja2.TemplateError):
    """env('X') of a credential: of toolhive-apply itself, of the pipeline, or one the manifest names."""


class _EnvReader:
    """The template's `env()`: refuses credentials (credentials.py), remembers which variables were read."""

    def __init__(self, environ: Mapping[str, str], named: set[str]) -> None:
        self.environ = environ
        self.named = named
        self.read: list[tuple[str, FieldPath]] = []
        self.where: FieldPath = ()

    def __call__(self, name: str, default: str | None = None) -> str:
        name = str(name)
        if is_credential(name, self.named):
            msg = (
                f"env({name!r}) is refused: {name} holds a credential (of toolhive-apply, of the pipeline, or named "
                "by this manifest as one), and a manifest value is printed in plans; give a server a secret through "
                "secrets: and the workload's secrets list instead"
            )
            raise _RefusedEnv(msg)
        self.read.append((name, self.where))
        value = self.environ.get(name, default)
        if value is None:
            msg = f"environment variable {name} is not set (and env() was given no default)"
            raise _MissingEnv(msg)
        return value


class Renderer:
    """Renders every string of a loaded manifest in one bounded sandbox, collecting errors with positions."""

    def __init__(
        self, environ: Mapping[str, str] | None = None, named: set[str] | None = None, budget: Budget | None = None
    ) -> None:
        self.sandbox = BoundedSandbox(budget, undefined=jinja2.StrictUndefined, autoescape=False)
        self.env = _EnvReader(os.environ if environ is None else environ, named or set())
        self.sandbox.globals["env"] = self.env
        self.issues: list[ManifestIssue] = []
        self._compiled: dict[str, Callable[[Mapping[str, Any]], Any]] = {}
        self._exhausted = False

    def _compile(self, value: str) -> Callable[[Mapping[str, Any]], Any]:
        """Compiled once per distinct string (compiling is most of a small template's cost, and is charged)."""
        compiled = self._compiled.get(value)
        if compiled is None:
            self.sandbox.charge_compile(value)
            single = _SINGLE_EXPRESSION.match(value)
            if single:
                expression = self.sandbox.compile_expression(single.group("expr"), undefined_to_none=False)
                compiled = _native(expression)
            else:
                template = self.sandbox.from_string(value)
                compiled = lambda context: template.render(**context)  # noqa: E731
            self._compiled[value] = compiled
        return compiled

    def render_value(self, value: str, context: Mapping[str, Any]) -> Any:
        """A lone `{{ expr }}` keeps its native type (so ports stay integers); other strings stay strings."""
        result = self._compile(value)(context)
        return self.sandbox.sandbox_made(result if isinstance(result, _JSON_TYPES) else str(result))

    def render_tree(self, node: Any, path: FieldPath, where: tuple[Positions, Mapping[str, Any]]) -> Any:
        positions, context = where
        if isinstance(node, dict):
            return {key: self.render_tree(item, (*path, key), where) for key, item in node.items()}
        if isinstance(node, list):
            return [self.render_tree(item, (*path, index), where) for index, item in enumerate(node)]
        if isinstance(node, str) and any(marker in node for marker in MARKERS):
            if self._exhausted:
                self.issues.append(positions.issue(path, "template not rendered: the sandbox's work budget is spent"))
                return node
            self.env.where = path
            try:
                return self.render_value(node, context)
            except jinja2.TemplateError as exc:
                self._exhausted = self.sandbox.budget.spent > self.sandbox.budget.limit
                self.issues.append(positions.issue(path, f"template error: {_describe(exc)}"))
                return node
            except RecursionError:
                self.issues.append(positions.issue(path, "template error: refused by the sandbox: recursion too deep"))
                return node
            except Exception as exc:  # noqa: BLE001 - a template may fail any way Python can (1/0, a bad int())
                self.issues.append(positions.issue(path, f"template error: {type(exc).__name__}: {exc}"))
                return node
        return node


def _native(expression: Any) -> Callable[[Mapping[str, Any]], Any]:
    def evaluate(context: Mapping[str, Any]) -> Any:
        result = expression(**context)
        if isinstance(result, jinja2.Undefined):
            result._fail_with_undefined_error()
        return result

    return evaluate


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

    Command-line vars win over manifest vars, as `--extra-vars` does in Ansible. Variables the manifest names as
    credentials (its Vault login inputs, its secrets' sources) are refused in env() like the tool's own, whether
    named as written or as rendered, and their values are scrubbed from all output from here on.
    """
    environ = os.environ if environ is None else environ
    named = manifest_credential_names(data)
    renderer = Renderer(environ, named)
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
    named |= manifest_credential_names(rendered)
    register_credentials(environ, named)
    return rendered, renderer.issues + _credentials_read(renderer.env.read, named, positions)


def _credentials_read(reads: list[tuple[str, FieldPath]], named: set[str], positions: Positions) -> list[ManifestIssue]:
    """env() reads of a variable that the rendered manifest turned out to name as a credential."""
    return [
        positions.issue(path, f"template error: env({name!r}) is refused: this manifest names {name} as a credential")
        for name, path in reads
        if is_credential(name, named)
    ]
