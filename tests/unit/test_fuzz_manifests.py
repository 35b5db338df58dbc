"""Property: whatever bytes or structures arrive, the loader answers with a Manifest or a ManifestError.

Thousands of mutated manifests (byte flips, truncations, random YAML values in every field and
Jinja2 sandbox escapes) must never escape as another exception type.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.mutations import paths, replaced
from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SEED_TEXT = (EXAMPLES / "full" / "stack.yaml").read_bytes()
SEED: dict[str, Any] = yaml.safe_load(SEED_TEXT)
SCRATCH = Path(tempfile.mkdtemp(prefix="thv-fuzz-"))

# Jinja2 sandbox escapes: attribute walks to classes, globals and builtins, file reads, resource exhaustion.
ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ env.__globals__ }}",
    "{{ env.__globals__['os'].environ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ cycler.__init__.__globals__.os.system('true') }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__['__builtins__']['open']('/etc/passwd').read() }}",
    "{{ range.__self__ }}",
    "{{ [].pop.__self__.__class__ }}",
    "{{ 'a'|attr('__class__') }}",
    "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ '{0.__class__}'.format(1) }}",
    "{{ '{x.__class__}'.format_map({'x': 1}) }}",
    "{{ dict(__class__=1).__class__.__base__ }}",
    "{% include '/etc/passwd' %}",
    "{% import '/etc/passwd' as x %}{{ x }}",
    "{% from '/etc/passwd' import x %}",
    "{% extends '/etc/passwd' %}",
    "{{ open('/etc/passwd').read() }}",
    "{% set x = ''.__class__ %}{{ x }}",
    "{% for x in range(10**9) %}{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ [1] * 10**9 }}",
    "{{ 2 ** 100000 }}",
    "{{ 1 / 0 }}",
    "{{ undefined_thing }}",
    "{{ undefined_thing.__class__ }}",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            *ESCAPES,
            "{{ env('HOME') }}",
            "{{ 7 * 7 }}",
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


ALL_PATHS = paths(SEED)[1:]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(ALL_PATHS), value=values)
def test_structural_mutations_only_ever_raise_manifest_errors(path: tuple[Any, ...], value: Any) -> None:
    mutated = replaced(SEED, path, value)
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


# -- sandbox escapes, one by one: refused with the project's own error, wherever the template is ----------------
def _manifest_with(template: str, where: str) -> dict[str, Any]:
    workload: dict[str, Any] = {"name": "w", "image": "toolhive-apply-test/http:latest", "transport": "streamable-http"}
    data: dict[str, Any] = {"apiVersion": "toolhive-apply/v1", "settings": {"stack": "escape"}, "workloads": [workload]}
    if where == "env_vars":
        workload["env_vars"] = {"X": template}
    elif where == "cmd_arguments":
        workload["cmd_arguments"] = ["--flag", template]
    elif where == "vars":
        data["vars"] = {"x": template}
        workload["env_vars"] = {"X": "{{ x }}"}
    else:
        data["settings"]["stack"] = template
    return data


@pytest.mark.parametrize("where", ["env_vars", "cmd_arguments", "vars", "settings.stack"])
@pytest.mark.parametrize("template", ESCAPES)
def test_every_sandbox_escape_is_refused_with_a_manifest_error(template: str, where: str, tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(_manifest_with(template, where)), encoding="utf-8")
    with pytest.raises(ManifestError) as refused:
        load_manifest([path], environ={"HOME": "/root"})
    text = "\n".join(refused.value.lines())
    assert "template error" in text and str(path) in text, text
    assert "<class" not in text and "root:x:0:0" not in text and "uid=" not in text, text


def test_file_reads_from_a_template_are_refused_and_show_nothing_of_the_file(tmp_path: Path) -> None:
    sentinel = "sentinel-" + "7" * 20
    target = tmp_path / "private.txt"
    target.write_text(sentinel, encoding="utf-8")
    attempts = [
        f"{{% include '{target}' %}}",
        f"{{% import '{target}' as x %}}{{{{ x }}}}",
        f"{{{{ open('{target}').read() }}}}",
        f"{{{{ lipsum.__globals__['__builtins__']['open']('{target}').read() }}}}",
        f"{{{{ cycler.__init__.__globals__['os'].popen('cat {target}').read() }}}}",
        f"{{{{ namespace.__init__.__globals__['__builtins__']['open']('{target}').read() }}}}",
        f"{{{{ self._TemplateReference__context.environment.loader.get_source(None, '{target}') }}}}",
    ]
    for attempt in attempts:
        path = tmp_path / "stack.yaml"
        path.write_text(yaml.safe_dump(_manifest_with(attempt, "env_vars")), encoding="utf-8")
        with pytest.raises(ManifestError) as refused:
            load_manifest([path], environ={})
        assert sentinel not in "\n".join(refused.value.lines()), attempt
        assert sentinel not in json.dumps(refused.value.as_json()), attempt


# -- the secret canary: an inline secret value never shows in any error, whatever else is wrong ------------------
CANARY = "canary-" + "c0ffee" * 6
CANARY_SEED: dict[str, Any] = {
    "apiVersion": "toolhive-apply/v1",
    "settings": {"stack": "canary"},
    "secrets": [{"key": "inline", "value": CANARY, "insecure": True, "description": "d"}],
    "workloads": [
        {
            "name": "w",
            "image": "toolhive-apply-test/http:latest",
            "transport": "streamable-http",
            "secrets": [{"name": "inline", "target": "API_TOKEN"}],
            "env_vars": {"A": "b"},
        }
    ],
}
CANARY_PATHS = [p for p in paths(CANARY_SEED)[1:] if p != ("secrets", 0, "value")]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(CANARY_PATHS), value=values)
def test_an_inline_secret_value_is_in_no_error_whatever_else_is_mutated(path: tuple[Any, ...], value: Any) -> None:
    mutated = replaced(CANARY_SEED, path, value)
    target = SCRATCH / "canary.yaml"
    target.write_text(yaml.safe_dump(mutated, allow_unicode=True), encoding="utf-8")
    try:
        load_manifest([target], environ={})
    except ManifestError as error:
        assert CANARY not in "\n".join(error.lines()) and CANARY not in json.dumps(error.as_json()), error.lines()
