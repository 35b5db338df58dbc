"""Request bodies that try to reach a hidden tool past the proxy's allow-list, shared by unit and container tests.

Every body asks, one way or another, for ``HIDDEN`` while the policy allows only ``ALLOWED``. Each one is read as
``ALLOWED`` (or as something harmless, or not at all) by Python's ``json``, and as a call to ``HIDDEN`` by some
decoder a real server uses: Go's ``encoding/json`` (case-insensitive keys, last duplicate wins, U+FFFD for bad
UTF-8), JavaScript's ``JSON.parse`` with zod (number ids such as ``1.0``), a first-duplicate-wins decoder, or a
stream decoder that stops after the first value.
"""

from __future__ import annotations

from typing import Final

ALLOWED: Final = "echo"
HIDDEN: Final = "get_env"
ARGS: Final = '{"name":"MCP_TRANSPORT","text":"x"}'


def _call(params: str, *, envelope: str = '"jsonrpc":"2.0","id":1,"method":"tools/call"') -> bytes:
    return ("{" + envelope + ',"params":' + params + "}").encode()


ATTACKS: Final[dict[str, bytes]] = {
    "second key Name": _call(f'{{"name":"{ALLOWED}","Name":"{HIDDEN}","arguments":{ARGS}}}'),
    "second key NAME": _call(f'{{"name":"{ALLOWED}","NAME":"{HIDDEN}","arguments":{ARGS}}}'),
    "only key Name": _call(f'{{"Name":"{HIDDEN}","arguments":{ARGS}}}'),
    "second key Params": _call(
        f'{{"name":"{ALLOWED}","arguments":{ARGS}}},"Params":{{"name":"{HIDDEN}","arguments":{ARGS}}}'
    ),
    "long s in params": _call(
        f'{{"name":"{ALLOWED}","arguments":{ARGS}}},"param\u017f":{{"name":"{HIDDEN}","arguments":{ARGS}}}'
    ),
    "escaped duplicate name": _call(f'{{"name":"{ALLOWED}","\\u006eame":"{HIDDEN}","arguments":{ARGS}}}'),
    "duplicate name, allowed last": _call(f'{{"name":"{HIDDEN}","name":"{ALLOWED}","arguments":{ARGS}}}'),
    "second key Method": _call(
        f'{{"name":"{HIDDEN}","arguments":{ARGS}}}',
        envelope='"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call"',
    ),
    "METHOD only": _call(
        f'{{"name":"{HIDDEN}","arguments":{ARGS}}}', envelope='"jsonrpc":"2.0","id":1,"METHOD":"tools/call"'
    ),
    "id 1.0": _call(
        f'{{"name":"{HIDDEN}","arguments":{ARGS}}}', envelope='"jsonrpc":"2.0","id":1.0,"method":"tools/call"'
    ),
    "id null": _call(
        f'{{"name":"{HIDDEN}","arguments":{ARGS}}}', envelope='"jsonrpc":"2.0","id":null,"method":"tools/call"'
    ),
    "id ID": _call(
        f'{{"name":"{HIDDEN}","arguments":{ARGS}}}', envelope='"jsonrpc":"2.0","ID":1,"method":"tools/call"'
    ),
    "no jsonrpc": _call(f'{{"name":"{HIDDEN}","arguments":{ARGS}}}', envelope='"id":1,"method":"tools/call"'),
    "notification": _call(
        f'{{"name":"{HIDDEN}","arguments":{ARGS}}}', envelope='"jsonrpc":"2.0","method":"tools/call"'
    ),
    "params array": _call(f'["{HIDDEN}"]'),
    "bad UTF-8 in an argument": _call(f'{{"name":"{HIDDEN}","arguments":{{"name":"MCP_TRANSPORT","x":"#"}}}}').replace(
        b"#", b"\xff"
    ),
    "huge integer in an unused field": _call(
        f'{{"name":"{HIDDEN}","arguments":{ARGS}}}',
        envelope='"jsonrpc":"2.0","id":1,"method":"tools/call","x":' + "9" * 5000,
    ),
    "1e999 in an unused field": _call(
        f'{{"name":"{HIDDEN}","arguments":{ARGS}}}', envelope='"jsonrpc":"2.0","id":1,"method":"tools/call","x":1e999'
    ),
    "NaN in an unused field": _call(
        f'{{"name":"{HIDDEN}","arguments":{ARGS}}}', envelope='"jsonrpc":"2.0","id":1,"method":"tools/call","x":NaN'
    ),
    "lone surrogate": _call(f'{{"name":"{HIDDEN}","arguments":{{"name":"MCP_TRANSPORT","x":"\\ud800"}}}}'),
    "byte-order mark": b"\xef\xbb\xbf" + _call(f'{{"name":"{HIDDEN}","arguments":{ARGS}}}'),
    "garbage after the value": _call(f'{{"name":"{HIDDEN}","arguments":{ARGS}}}') + b" x",
    "a second value": _call(f'{{"name":"{HIDDEN}","arguments":{ARGS}}}') + b"{}",
    "batch with an id 1.0 element": b"["
    + _call(f'{{"name":"{HIDDEN}","arguments":{ARGS}}}', envelope='"jsonrpc":"2.0","id":1.0,"method":"tools/call"')
    + b"]",
    "batch with a Name element": b'[{"jsonrpc":"2.0","id":7,"method":"ping"},'
    + _call(f'{{"name":"{ALLOWED}","Name":"{HIDDEN}","arguments":{ARGS}}}')
    + b"]",
    "deep nesting": _call(
        f'{{"name":"{HIDDEN}","arguments":{{"name":"MCP_TRANSPORT","x":' + "[" * 5000 + "]" * 5000 + "}}"
    ),
    "UTF-16": _call(f'{{"name":"{HIDDEN}","arguments":{ARGS}}}').decode().encode("utf-16"),
}
"""Name -> body. None of them may reach a server as a call to ``HIDDEN``, nor be answered by ``HIDDEN``."""

FIRST_WINS: Final = frozenset({"duplicate name, allowed last"})
"""Attacks aimed at decoders that keep the first of two duplicate keys (Go and Python keep the last)."""
