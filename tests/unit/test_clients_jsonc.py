"""The JSON/JSONC span editor: exact output for the layouts users have, and exact positions for broken input."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolhive_apply.clients.jsonc import JsoncDocument, JsoncError, parse, position

E = {"url": "http://127.0.0.1:1/mcp", "type": "http"}
NEW_FILE = (
    '{\n  "mcpServers": {\n    "ours": {\n      "url": "http://127.0.0.1:1/mcp",\n      "type": "http"\n    }\n  }\n}'
)


def upserted(text: str, *, comments: bool = True, path: tuple[str, ...] = ("mcpServers",)) -> str:
    document = JsoncDocument(text, comments=comments)
    document.upsert(path, "ours", E)
    return document.text


def removed(text: str, name: str = "ours", *, comments: bool = True) -> str:
    document = JsoncDocument(text, comments=comments)
    assert document.remove(("mcpServers",), name)
    return document.text


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(
            "{}",
            NEW_FILE,
            id="empty-object",
        ),
        pytest.param(
            "",
            NEW_FILE,
            id="empty-file",
        ),
        pytest.param(
            '{"a": 1}',
            '{"a": 1, "mcpServers": {"ours": {"url": "http://127.0.0.1:1/mcp", "type": "http"}}}',
            id="one-line-object-stays-one-line",
        ),
        pytest.param(
            '{\n\t"mcpServers": {\n\t\t"x": {"url": "u"}\n\t}\n}\n',
            '{\n\t"mcpServers": {\n\t\t"x": {"url": "u"},\n'
            '\t\t"ours": {"url": "http://127.0.0.1:1/mcp", "type": "http"}\n\t}\n}\n',
            id="tabs-and-compact-siblings",
        ),
        pytest.param(
            '{\r\n  "mcpServers": {\r\n    "x": {\r\n      "url": "u"\r\n    }\r\n  }\r\n}\r\n',
            '{\r\n  "mcpServers": {\r\n    "x": {\r\n      "url": "u"\r\n    },\r\n    "ours": {\r\n'
            '      "url": "http://127.0.0.1:1/mcp",\r\n      "type": "http"\r\n    }\r\n  }\r\n}\r\n',
            id="crlf",
        ),
        pytest.param(
            '{\n  "mcpServers": {\n    "x": {"url": "u"}, // keep me here\n  },\n}\n',
            '{\n  "mcpServers": {\n    "x": {"url": "u"}, // keep me here\n'
            '    "ours": {"url": "http://127.0.0.1:1/mcp", "type": "http"},\n  },\n}\n',
            id="trailing-comma-style-and-comment",
        ),
        pytest.param(
            '{\n  "mcpServers": {\n    "x": {"url": "u"} /* why */ // and more\n  }\n}\n',
            '{\n  "mcpServers": {\n    "x": {"url": "u"}, /* why */ // and more\n'
            '    "ours": {"url": "http://127.0.0.1:1/mcp", "type": "http"}\n  }\n}\n',
            id="comments-after-the-last-sibling-stay-on-its-line",
        ),
        pytest.param(
            '{\n  "mcpServers": { // none yet\n  }\n}\n',
            '{\n  "mcpServers": { // none yet\n    "ours": {\n      "url": "http://127.0.0.1:1/mcp",\n'
            '      "type": "http"\n    }\n  }\n}\n',
            id="empty-object-with-a-comment",
        ),
        pytest.param(
            '{\n  "mcpServers": {\n    "ours": {"url": "old"}\n  }\n}\n',
            '{\n  "mcpServers": {\n    "ours": {"url": "http://127.0.0.1:1/mcp", "type": "http"}\n  }\n}\n',
            id="replace-keeps-a-one-line-entry-on-one-line",
        ),
    ],
)
def test_upsert_produces_exactly(before: str, after: str) -> None:
    assert upserted(before) == after


def test_a_dotted_key_is_one_key_not_a_path() -> None:
    text = upserted('{"amp.mcpServers": {}}', path=("amp.mcpServers",))
    assert json.loads(text) == {"amp.mcpServers": {"ours": E}}


def test_missing_levels_of_a_nested_path_are_created() -> None:
    text = upserted('{\n  "a": {\n    "keep": 1\n  }\n}\n', path=("a", "b", "c"))
    assert json.loads(text) == {"a": {"keep": 1, "b": {"c": {"ours": E}}}}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param('{"mcpServers": {"ours": {}, "b": 2}}', '{"mcpServers": {"b": 2}}', id="first-of-one-line"),
        pytest.param('{"mcpServers": {"a": 1, "ours": {}, "b": 2}}', '{"mcpServers": {"a": 1, "b": 2}}', id="middle"),
        pytest.param('{"mcpServers": {"a": 1, "ours": {}}}', '{"mcpServers": {"a": 1}}', id="last-of-one-line"),
        pytest.param('{"mcpServers": {"ours": {}}}', '{"mcpServers": {}}', id="only"),
        pytest.param(
            '{\n  "mcpServers": {\n    "a": 1, // about a\n    "ours": {\n      "url": "u"\n    }\n  }\n}',
            '{\n  "mcpServers": {\n    "a": 1 // about a\n  }\n}',
            id="last-after-a-commented-line",
        ),
        pytest.param(
            '{\n  "mcpServers": {\n    "ours": 1, // ours\n    // about b\n    "b": 2\n  }\n}',
            '{\n  "mcpServers": {\n    // ours\n    // about b\n    "b": 2\n  }\n}',
            id="first-keeps-the-comments-around-it",
        ),
        pytest.param(
            '{\n  "mcpServers": {\n    "a": 1,\n    "ours": 2,\n  },\n}',
            '{\n  "mcpServers": {\n    "a": 1,\n  },\n}',
            id="trailing-comma",
        ),
        pytest.param(
            '{\n  "mcpServers": {\n    "ours": 1,\n    "a": 2,\n    "ours": 3\n  }\n}',
            '{\n  "mcpServers": {\n    "a": 2\n  }\n}',
            id="duplicates-all-go",
        ),
    ],
)
def test_remove_produces_exactly(before: str, after: str) -> None:
    assert removed(before) == after


def test_removing_an_absent_name_or_path_changes_nothing() -> None:
    for text in ('{"mcpServers": {"a": 1}}', '{"other": 1}'):
        document = JsoncDocument(text, comments=False)
        assert not document.remove(("mcpServers",), "ours")
        assert document.text == text


def test_with_duplicate_keys_the_last_one_is_read_and_replaced() -> None:
    document = JsoncDocument('{"mcpServers": {"ours": 1, "ours": 2}}', comments=False)
    assert document.servers(("mcpServers",)) == {"ours": 2}
    document.upsert(("mcpServers",), "ours", 3)
    assert document.text == '{"mcpServers": {"ours": 1, "ours": 3}}'


def test_values_are_read_like_json_reads_them() -> None:
    text = '{"s": "\\u00e9\\n\\"", "n": [-1.5e3, 0, true, false, null], "o": {}}'
    assert parse(text, comments=False).value == json.loads(text)


@pytest.mark.parametrize(
    ("text", "comments", "offset", "message"),
    [
        ('{"a": 1 // no\n}', False, 8, "comments are not allowed"),
        ('{"a": 1,}', False, 7, "trailing comma is not allowed"),
        ('{"a": 1 "b": 2}', True, 8, "expected ',' or '}'"),
        ('{"a": 1', True, 7, "expected ',' or '}'"),
        ('{"a": "x\ny"}', True, 6, "invalid string"),
        ("{'a': 1}", True, 1, "expected a quoted key"),
        ('{"a" 1}', True, 5, "expected ':'"),
        ('{"a": tru}', True, 6, "unexpected character 't'"),
        ('{"a": 1} x', True, 9, "unexpected content after the top-level value"),
        ("{ /* open", True, 2, "unterminated /* comment"),
        ("[" * 300, True, 256, "nested deeper than"),
    ],
)
def test_syntax_errors_carry_the_offset_of_the_problem(text: str, comments: bool, offset: int, message: str) -> None:
    with pytest.raises(JsoncError) as caught:
        parse(text, comments=comments)
    assert (caught.value.offset, message in caught.value.message) == (offset, True)


def test_structure_errors_point_at_the_offending_value() -> None:
    with pytest.raises(JsoncError) as caught:
        JsoncDocument('{\n  "mcpServers": []\n}', comments=False).upsert(("mcpServers",), "x", 1)
    assert (position('{\n  "mcpServers": []\n}', caught.value.offset), caught.value.message) == (
        (2, 17),
        "mcpServers must be an object",
    )
    with pytest.raises(JsoncError, match="top-level value must be an object"):
        JsoncDocument("[]", comments=False).servers(("mcpServers",))


def test_positions_are_one_based_lines_and_columns() -> None:
    assert position("ab\ncd", 0) == (1, 1)
    assert position("ab\ncd", 4) == (2, 2)


def test_a_byte_order_mark_is_accepted_only_in_jsonc() -> None:
    assert JsoncDocument('\ufeff{"a": 1}', comments=True).root.value == {"a": 1}
    with pytest.raises(JsoncError, match="unexpected character"):
        JsoncDocument('\ufeff{"a": 1}', comments=False)


# -- properties -----------------------------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=8))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
server_names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=6)


@st.composite
def commented_documents(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    """An indented JSON document with a servers map, and `//` or `/* */` comments at some line starts."""
    servers = draw(st.dictionaries(server_names, json_values, max_size=4))
    document = {**draw(st.dictionaries(st.text(max_size=5), json_values, max_size=3)), "mcpServers": servers}
    indent = draw(st.sampled_from([2, 4, "\t"]))
    lines = json.dumps(document, indent=indent, ensure_ascii=False).split("\n")
    marks = draw(st.lists(st.integers(0, len(lines) - 1), max_size=4))
    for number, mark in enumerate(sorted(marks, reverse=True)):
        comment = f"// c{number}" if number % 2 else f"/* c{number} */"
        lines.insert(mark + 1, comment)
    return "\n".join(lines) + "\n", document


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commented_documents(), server_names, json_values)
def test_an_upsert_changes_only_the_servers_map_and_removal_undoes_it(
    case: tuple[str, dict[str, object]], name: str, value: object
) -> None:
    text, before = case
    document = JsoncDocument(text, comments=True)
    document.upsert(("mcpServers",), name, value)

    after = parse(document.text, comments=True).value
    assert isinstance(after, dict)
    servers = dict(before["mcpServers"])  # type: ignore[call-overload]
    assert after == {**before, "mcpServers": {**servers, name: value}}
    if name not in servers:  # a replaced entry may take comments inside it along; an added one takes none
        comments = [line.strip() for line in text.splitlines() if line.strip().startswith(("//", "/*"))]
        assert [c for c in comments if c not in document.text] == []
        document.remove(("mcpServers",), name)
        assert document.text == text


# -- the strict check is json.loads's grammar (it replaced a json.loads of every edited file) ---------------

mutations = st.tuples(st.integers(min_value=0, max_value=400), st.sampled_from(list('{}[],:"\\ 0-1.eE+tfnu/*\n\t')))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.sampled_from([None, 0, 2, "\t"]), st.lists(mutations, max_size=3))
def test_what_the_strict_check_accepts_json_loads_reads_the_same(value: object, indent: object, edits: list) -> None:
    text = json.dumps({"mcpServers": value}, indent=indent)  # type: ignore[arg-type]
    for offset, char in edits:
        offset %= len(text) + 1
        text = text[:offset] + char + text[offset + 1 :]
    try:
        node = parse(text, comments=False)
    except JsoncError:
        return
    expected = json.loads(text)  # raises if the check accepted what json.loads would not
    assert node.scanner.build(node.start)[0] == expected  # our own reader (used where json.loads cannot be)
    assert node.value == expected


def test_nesting_is_limited_without_recursion() -> None:
    assert parse("[" * 256 + "]" * 256, comments=False).value is not None
    with pytest.raises(JsoncError, match="nested deeper than 256 levels"):
        parse("[" * 257 + "]" * 257, comments=False)
    assert parse('{"a": ' * 256 + "1" + "}" * 256, comments=True).value is not None


def test_an_integer_too_long_for_python_is_read_as_javascript_reads_it() -> None:
    digits = "9" * 5000
    document = JsoncDocument(f'{{"mcpServers": {{"x": {{"n": {digits}}}}}}}', comments=False)
    assert document.servers(("mcpServers",)) == {"x": {"n": float(digits)}}
