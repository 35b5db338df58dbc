"""Whether a loaded manifest holds any template at all: one with none is rendered without loading jinja2.

Most manifests have no `{{`, `{%` or `{#` anywhere; for them rendering is the identity, and importing and building
the sandbox was a sizeable share of a no-op plan's start-up (issue #20).
"""

from __future__ import annotations

from typing import Any, Final

MARKERS: Final = ("{{", "{%", "{#")
"""What makes a string a template (Jinja2's statement, expression and comment openers)."""


def has_template(node: Any) -> bool:
    """True when any string in the tree (keys excepted: they are never rendered) holds a marker."""
    if isinstance(node, dict):
        return any(has_template(item) for item in node.values())
    if isinstance(node, list):
        return any(has_template(item) for item in node)
    return isinstance(node, str) and any(marker in node for marker in MARKERS)


def copy_tree(node: Any) -> Any:
    """The tree as rendering returns it when there is nothing to render: new containers, the same leaves."""
    if isinstance(node, dict):
        return {key: copy_tree(item) for key, item in node.items()}
    if isinstance(node, list):
        return [copy_tree(item) for item in node]
    return node
