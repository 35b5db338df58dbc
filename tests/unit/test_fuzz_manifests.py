"""Property: whatever bytes or structures arrive, the loader answers with a Manifest or a ManifestError.

Thousands of mutated manifests (byte flips, truncations, random YAML values in every field and
Jinja2 sandbox escapes) must never escape as another exception type.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SEED_TEXT = (EXAMPLES / "full" / "stack.yaml").read_bytes()
SEED: dict[str, Any] = yaml.safe_load(SEED_TEXT)
SCRATCH = Path(tempfile.mkdtemp(prefix="thv-fuzz-"))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "{{ self.__init__.__globals__ }}",
            "{{ env('HOME') }}",
            "{{ undefined_thing }}",
            "{% for x in range(10**9) %}{% endfor %}",
            "{{ 7 * 7 }}",
            "{{ 'x' * 10**9 }}",
            "{{ 2 ** 100000 }}",
            "{{ 1 / 0 }}",
            "{% raw %}",
            "{{",
            "stdio",
            "streamable-http",
            "../../etc/passwd:/x",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _load_text(data: bytes) -> None:
    path = SCRATCH / "m.yaml"
    path.write_bytes(data)
    with contextlib.suppress(ManifestError):
        load_manifest([path], environ={})


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


ALL_PATHS = _paths(SEED)[1:]


def _set(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {**node, head: _set(node[head], rest, value)}
    copy = list(node)
    copy[head] = _set(copy[head], rest, value)
    return copy


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(ALL_PATHS), value=values)
def test_structural_mutations_only_ever_raise_manifest_errors(path: tuple[Any, ...], value: Any) -> None:
    mutated = _set(SEED, path, value)
    _load_text(yaml.safe_dump(mutated, allow_unicode=True).encode())


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    position=st.integers(min_value=0, max_value=len(SEED_TEXT) - 1),
    replacement=st.binary(min_size=0, max_size=6),
    cut=st.booleans(),
)
def test_byte_mutations_only_ever_raise_manifest_errors(position: int, replacement: bytes, cut: bool) -> None:
    data = SEED_TEXT[:position] if cut else SEED_TEXT[:position] + replacement + SEED_TEXT[position + 1 :]
    _load_text(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_only_ever_raises_manifest_errors(text: str) -> None:
    _load_text(("apiVersion: toolhive-apply/v1\n" + text).encode("utf-8", "surrogatepass"))
