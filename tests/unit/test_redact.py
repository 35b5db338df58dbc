"""The scrubber: every registered value is caught in every spelling an output may give it, before encoding and
after, and structures are scrubbed whole (keys included) before any serialiser sees them."""

from __future__ import annotations

import base64
import json
import urllib.parse
import uuid

import pytest

from toolhive_apply.redact import (
    MIN_SCRUB_LENGTH,
    REDACTED,
    SecretValue,
    redact,
    scrub,
    scrubbed_json,
    secret_paths,
    spellings,
)


def unique(shape: str = "{}") -> str:
    return shape.format(uuid.uuid4().hex)


PEM_SHAPE = "-----BEGIN PRIVATE KEY-----\nMIIE{}QIBADANBgkqhkiG9w0B\nBKcwggSj{}AgEAAoIBAQC7\n-----END PRIVATE KEY-----"


def pem() -> str:
    return PEM_SHAPE.format(uuid.uuid4().hex, uuid.uuid4().hex)


@pytest.mark.parametrize(
    "encode",
    [
        json.dumps,
        lambda v: json.dumps(v, ensure_ascii=False),
        lambda v: json.dumps({"note": v}, indent=2),
        repr,
        ascii,
        lambda v: repr({"k": v}),
        lambda v: urllib.parse.quote(v, safe=""),
        lambda v: urllib.parse.quote_plus(v),
        lambda v: base64.b64encode(v.encode()).decode(),
    ],
)
def test_a_value_is_caught_in_every_common_encoding(encode: object) -> None:
    value = unique('q"uo\\te-{}-é🔑\u2028tail')
    SecretValue(value)
    assert callable(encode)
    text = encode(value)
    scrubbed = redact(f"before {text} after")
    assert REDACTED in scrubbed
    assert value.split("-")[1] not in scrubbed  # the unique part is gone, in whatever spelling


def test_each_line_of_a_multi_line_value_is_caught_even_re_indented_or_cut() -> None:
    value = pem()
    SecretValue(value)
    body = value.splitlines()[1:3]
    tail = "  last log lines:\n    " + "\n    ".join(body[1:])  # the first lines fell out of the log tail
    assert body[1] not in redact(tail)
    assert body[0] not in redact("\n".join("    " + line for line in value.splitlines()))
    crlf = value.replace("\n", "\r\n")
    assert redact(crlf) == REDACTED  # CRLF line ends: the whole value at once


def test_a_line_split_by_u2028_is_caught_in_each_part() -> None:
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    SecretValue(f"{first}\u2028{second}")
    for line in f"{first}\u2028{second}".splitlines():  # how a log reader splits it
        assert redact(f"    {line}\n") == f"    {REDACTED}\n"


def test_values_shorter_than_the_minimum_are_not_registered() -> None:
    short = "x" * (MIN_SCRUB_LENGTH - 1)
    SecretValue(short)
    assert redact(f"a {short} b") == f"a {short} b"
    assert spellings(short) == frozenset()


def test_scrub_cleans_keys_values_and_nested_structures_before_encoding() -> None:
    value = unique('"{}"é')
    SecretValue(value)
    data = {value: [value, {"k": (value, 3)}], "n": None, "ok": True, "secret": SecretValue(unique())}
    cleaned = scrub(data)
    assert cleaned == {REDACTED: [REDACTED, {"k": [REDACTED, 3]}], "n": None, "ok": True, "secret": REDACTED}
    encoded = scrubbed_json(data)
    assert value.strip('"é') not in encoded
    assert json.loads(encoded)[REDACTED][0] == REDACTED


def test_secret_paths_name_where_a_value_sits_without_showing_it() -> None:
    value = unique()
    SecretValue(value)
    data = {"changes": [{"spec": {"env_vars": {"A": "plain", "B": f"x {value}"}}}], value: 1}
    assert secret_paths(data) == ["changes[0].spec.env_vars.B", value]
    assert secret_paths({"changes": [{"spec": {"env_vars": {"A": "plain"}}}]}) == []
