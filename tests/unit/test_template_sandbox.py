"""The template sandbox's bounds: every way a template can make a big value or do much work is refused, with the
positioned "refused by the sandbox" error, and what is allowed stays bounded.

Bounds are asserted on counters, never on time: the sandbox's own budget, and, independently of it, the number
of Python calls a render makes (sys.setprofile) and the memory it allocates (tracemalloc).
"""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.manifest.loader import Positions
from toolhive_apply.manifest.sandbox import MAX_VALUE, MAX_WORK, Budget
from toolhive_apply.manifest.template import Renderer

SMALL = 20_000


def _render(template: str, budget: Budget | None = None) -> tuple[Any, str | None, Renderer]:
    renderer = Renderer({}, budget=budget)
    result = renderer.render_tree(template, ("vars", "x"), (Positions(), {}))
    return result, (renderer.issues[0].message if renderer.issues else None), renderer


ATTACKS = [
    "{{ 'x'.center(10**9) }}",
    "{{ 'x'|center(10**9) }}",
    "{{ 'x'.ljust(10**9) }}{{ 'x'.rjust(10**9) }}",
    "{{ 'x'.zfill(10**9) }}",
    "{{ 'a\\tb'.expandtabs(10**9) }}",
    "{{ '%9999999d' % 1 }}",
    "{{ '%.9999999f' % 1 }}",
    "{{ ('%100000s' * 10) % (('a',) * 10) }}",
    "{{ '{:>99999999}'.format(1) }}",
    "{{ '{:{}}'.format(1, 99999999) }}",
    "{{ ('{:100000}' * 10).format(*range(10)) }}",
    "{{ '%9999999d'|format(1) }}",
    "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l * 2 %}{% endfor %}",
    "{% set ns = namespace(t=(1,)) %}{% for i in range(64) %}{% set ns.t = (ns.t, ns.t) %}{% endfor %}"
    "{{ ns.t == ns.t }}",
    "{% set ns = namespace(x=2) %}{% for i in range(64) %}{% set ns.x = ns.x * ns.x %}{% endfor %}",
    "{{ ((2**64)**64)**64 }}",
    "{{ 2 ** (2 ** (2 ** (2 ** 5))) }}",  # Jinja's ** is left-associative: nest it to climb
    "{{ 10**100000 }}",
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
    "{% endfor %}{% endfor %}{% endfor %}",
    "{% for i in range(200000) %}xx{% endfor %}",
    "{% for i in range(100000) %}{{ i }}{% endfor %}",
    "{{ range(10**100) }}",
    "{{ range(100000)|join(',') }}",
    "{{ ['x' * 100000] * 100000 }}",
    "{{ (['x' * 100000] * 1000)|join }}",
    "{{ 'ab'|replace('', 'x' * 100000) }}",
    "{{ 'ab'.replace('', 'x' * 100000) }}",
    "{{ 'a\\nb'|indent(10**8) }}",
    "{{ ('a\\n' * 100000)|indent('x' * 100) }}",
    "{{ [1]|batch(10**9, 0)|list }}",
    "{{ [1]|slice(10**9)|list }}",
    "{{ 'a b c'|wordwrap(1, wrapstring='x' * 100000) }}",
    "{{ [[[1]]]|tojson(indent=10**6) }}",
    "{{ ([[1] * 200] * 1000)|sum(start=[]) }}",
    "{{ 'x'.encode() }}",
    "{{ 'abc'.translate({97: 'x' * 100000}) }}",
    "{{ (1).to_bytes(10**9, 'big') }}",
    "{{ lipsum(10**6) }}",
    "{{ 'x'|urlize(target='x' * 100000) }}",
    "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "{% for x in [[1, 2]] recursive %}{{ loop(range(100000)|batch(1)) }}{% endfor %}",
    "{% set a = 'x' * 200000 %}{% for i in range(100000) %}{{ a }}{% endfor %}",
    "{% set a = 'x' * 200000 %}{% macro m() %}{% for i in range(100) %}{{ a }}{% endfor %}{% endmacro %}"
    "{{ m()|length }}",
    "{% set a = 'x' * 200000 %}{% set b %}{{ a }}{{ a }}{% endset %}",
    "{% filter upper %}{% for i in range(100000) %}xxxxxxxx{% endfor %}{% endfilter %}",
    "{{ 1 }}" * 20000,  # compiling a huge dense template is work too: refused while it is lexed
    "{{ [" + "1, " * 50000 + "] }}",
]


@pytest.mark.parametrize("template", ATTACKS)
def test_every_shape_of_exhaustion_is_refused_by_the_sandbox(template: str) -> None:
    result, message, renderer = _render(template)
    assert message is not None and message.startswith("template error: "), (template, result)
    assert "refused by the sandbox" in message or "No filter named" in message or "is undefined" in message, message
    assert renderer.sandbox.budget.spent <= MAX_WORK + 2 * MAX_VALUE  # stopped at the budget, or long before


@pytest.mark.parametrize("template", ATTACKS)
def test_refusal_costs_calls_and_memory_in_proportion_to_the_budget_not_the_template(template: str) -> None:
    """Independent of the sandbox's own accounting: Python calls made and memory allocated, on a small budget."""
    with _counted() as counts:
        _, message, _ = _render(template, Budget(SMALL))
    assert message is not None
    assert counts["calls"] < 300 * SMALL and counts["peak"] < 48 * 1024 * 1024, counts


ALLOWED = [
    ("{{ 'x'.center(11) }}", "     x     "),
    ("{{ '%05d' % 42 }}", "00042"),
    ("{{ '{:>6}'.format('ab') }}", "    ab"),
    ("{{ [1, 2, 3]|join(',') }}", "1,2,3"),
    ("{{ range(3)|list }}", [0, 1, 2]),
    ("{{ 2 ** 10 }}", 1024),
    ("{{ 'a-b'|replace('-', '_') }}", "a_b"),
    ("{% for h in ['a', 'b'] %}{{ h }}{% if not loop.last %},{% endif %}{% endfor %}", "a,b"),
    ("{{ {'b': 1, 'a': 2}|tojson }}", '{"a": 2, "b": 1}'),
    ("{{ [[1], [2]]|sum(start=[]) }}", [1, 2]),
    ("{{ 'ab' * 3 }}", "ababab"),
    (
        "{% set ns = namespace(n=0) %}{% for i in range(1000) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
        "499500",
    ),
    ("{{ 'Hello'|wordwrap(3) }}", "Hel\nlo"),
    ("{{ 'a\\nb'|indent(2) }}", "a\n  b"),
    ("{{ 'A B'.lower().split() }}", ["a", "b"]),
    ("{{ [3, 1, 2]|sort|first }}", 1),
    ("{{ 'x'|center(5)|length }}", 5),
    ("{{ {'a': 1}.items()|list }}", [("a", 1)]),
]


@pytest.mark.parametrize(("template", "expected"), ALLOWED)
def test_ordinary_templates_render_as_jinja_renders_them(template: str, expected: Any) -> None:
    result, message, _ = _render(template)
    assert message is None, message
    assert result == expected


def test_the_budget_covers_the_whole_manifest_and_stops_it_once(tmp_path: Path) -> None:
    loop = "{% for i in range(300) %}{% for j in range(300) %}{% endfor %}{% endfor %}"
    body = "".join(f'  v{i}: "{loop}"\n' for i in range(30))
    path = tmp_path / "stack.yaml"
    path.write_text(f"apiVersion: toolhive-apply/v1\nvars:\n{body}")
    with pytest.raises(ManifestError) as raised:
        load_manifest([path], environ={})
    lines = raised.value.lines()
    assert sum("units of work" in line for line in lines) == 1  # each var alone fits; together they do not
    assert any("template not rendered: the sandbox's work budget is spent" in line for line in lines)
    assert all(":" in line.split(" ")[0] for line in lines)  # every one positioned


def test_many_distinct_templates_are_work_too(tmp_path: Path) -> None:
    body = "".join(f'  v{i}: "{{{{ {i} }}}}"\n' for i in range(3000))
    path = tmp_path / "stack.yaml"
    path.write_text(f"apiVersion: toolhive-apply/v1\nvars:\n{body}")
    with pytest.raises(ManifestError) as raised:
        load_manifest([path], environ={})
    assert any("units of work" in line for line in raised.value.lines())
    same = "".join(f'  v{i}: "{{{{ 1 }}}}"\n' for i in range(3000))  # one template, compiled once
    path.write_text(f"apiVersion: toolhive-apply/v1\nvars:\n{same}")
    assert load_manifest([path], environ={}).vars["v2999"] == 1


# -- properties ------------------------------------------------------------------------------------------------
@contextmanager
def _counted() -> Iterator[dict[str, int]]:
    """Python and C calls made, and peak memory allocated, while the block runs."""
    counts = {"calls": 0, "peak": 0}

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            counts["calls"] += 1

    tracemalloc.start()
    sys.setprofile(profile)
    try:
        yield counts
    finally:
        sys.setprofile(None)
        counts["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


NUMBERS = st.sampled_from(["0", "1", "3", "1000", "100000", "10**9", "2**64", "-1"])
STRINGS = st.sampled_from(["'x'", "'ab'", "''", "'a\\tb\\nc'", "'%s%d'", "'{:>1000}'", "'x' * 1000"])
ATOMS = st.one_of(NUMBERS, STRINGS, st.sampled_from(["range(100000)", "[1, 2]", "ns.v", "(1, 2)", "{'a': 'b'}"]))
FILTERS = st.sampled_from(
    [
        "center({n})", "indent({n})", "replace('', {s})", "batch({n})|list", "slice({n})|list", "join({s})",
        "list", "sort", "wordwrap({n})", "tojson({n})", "pprint", "string", "format({e})", "sum(start=[])",
        "map('string')|list", "unique|list", "reverse|list", "length", "upper", "truncate({n})", "first",
    ]
)  # fmt: skip
METHODS = st.sampled_from(
    ["center({n})", "zfill({n})", "ljust({n})", "replace('', {s})", "format({e})", "split()", "expandtabs({n})"]
)
OPERATORS = st.sampled_from(["*", "**", "~", "+", "%", "//"])


def _expression(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return ATOMS
    inner = _expression(depth - 1)
    return st.one_of(
        inner,
        st.builds(lambda e, f, n, s: f"({e})|{f.format(n=n, s=s, e=e)}", inner, FILTERS, NUMBERS, STRINGS),
        st.builds(lambda e, m, n, s: f"({e}).{m.format(n=n, s=s, e=e)}", inner, METHODS, NUMBERS, STRINGS),
        st.builds(lambda a, o, b: f"({a}) {o} ({b})", inner, OPERATORS, inner),
        st.builds(lambda a, b: f"[{a}, {b}, {a}]", inner, inner),
    )


def _template(depth: int) -> st.SearchStrategy[str]:
    expression = _expression(2)
    if depth == 0:
        return st.builds(lambda e: f"{{{{ {e} }}}}", expression)
    inner = _template(depth - 1)
    return st.one_of(
        inner,
        st.builds(lambda e, b: f"{{% for i in {e} %}}{b}{{% endfor %}}", expression, inner),
        st.builds(lambda e: f"{{% set ns.v = {e} %}}", expression),
        st.builds(lambda a, b: a + b, inner, inner),
        st.builds(lambda b: f"{{% macro m(k) %}}{b}{{{{ m(k) }}}}{{% endmacro %}}{{{{ m(1) }}}}", inner),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_template(3))
def test_every_render_is_bounded_or_refused_by_the_sandbox(body: str) -> None:
    """Whatever the shape: the render finishes with a bounded value or a positioned error, and the calls and memory
    it took are bounded by the (here small) work budget, not by the template."""
    template = "{% set ns = namespace(v='ab') %}" + body
    with _counted() as counts:
        result, message, _ = _render(template, Budget(SMALL))
    if message is None:
        assert len(str(result)) <= MAX_VALUE
    else:
        assert message.startswith("template error: "), message
    assert counts["calls"] < 300 * SMALL, (template, counts)
    assert counts["peak"] < 48 * 1024 * 1024, (template, counts)
