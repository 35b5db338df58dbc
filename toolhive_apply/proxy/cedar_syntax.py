"""The Cedar subset's tokens and syntax tree (see ``cedar.py`` for the subset): what the parser builds and the
evaluator walks. Positions are 1-based line/column, so every refusal can point at the policy text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from toolhive_apply.proxy.cedar_values import CedarError, Uid, Value

_TOKEN: Final = re.compile(
    r"""(?P<space>[ \t\r\n]+)|(?P<comment>//[^\n]*)|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<int>[0-9]+)
    |(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>==|!=|<=|>=|&&|\|\||::|[(){}\[\],;.<>!@\-+*?%&|=:])""",
    re.VERBOSE | re.DOTALL,
)
RESERVED: Final = frozenset({"true", "false", "if", "then", "else", "in", "like", "has", "is", "__cedar"})
VARIABLES: Final = ("principal", "action", "resource", "context")


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    line: int
    col: int


def tokenize(text: str) -> list[Token]:
    tokens = []
    position, line, line_start = 0, 1, 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        col = position - line_start + 1
        if match is None:
            raise CedarError(f"unexpected character {text[position]!r}", line, col)
        kind = match.lastgroup or ""
        value = match.group()
        if kind not in ("space", "comment"):
            tokens.append(Token(kind, value, line, col))
        newlines = value.count("\n")
        if newlines:
            line += newlines
            line_start = match.start() + value.rindex("\n") + 1
        position = match.end()
    tokens.append(Token("end", "", line, position - line_start + 1))
    return tokens


_ESCAPES: Final = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "0": "\0", "'": "'", '"': '"'}


def string_parts(token: Token, *, pattern: bool = False) -> list[str | None]:
    """A string literal's characters after Cedar's escapes; in a ``like`` pattern an unescaped ``*`` is a wildcard
    (None) and ``\\*`` a literal star (outside patterns ``\\*`` is an error, as in Cedar)."""
    body = token.text[1:-1]
    out: list[str | None] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(None if pattern and char == "*" else char)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt == "u" and body[i + 2 : i + 3] == "{":
            end = body.find("}", i + 3)
            digits = body[i + 3 : end] if end > 0 else ""
            code = int(digits, 16) if re.fullmatch(r"[0-9a-fA-F]{1,6}", digits) else -1
            if not 0 <= code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise CedarError("bad \\u{...} escape", token.line, token.col)
            out.append(chr(code))
            i = end + 1
            continue
        if nxt == "*" and pattern:
            out.append("*")
        elif nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
        else:
            raise CedarError(f"unknown escape \\{nxt}", token.line, token.col)
        i += 2
    return out


def unescape(token: Token) -> str:
    return "".join(part for part in string_parts(token) if part is not None)


@dataclass(frozen=True, slots=True)
class Literal:
    value: Value


@dataclass(frozen=True, slots=True)
class Var:
    name: str


@dataclass(frozen=True, slots=True)
class SetExpr:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Has:
    operand: Expr
    attr: str


@dataclass(frozen=True, slots=True)
class Like:
    operand: Expr
    pattern: tuple[str | None, ...]
    """Literal characters, None for a wildcard ``*``."""


@dataclass(frozen=True, slots=True)
class Attr:
    operand: Expr
    attr: str


@dataclass(frozen=True, slots=True)
class Call:
    operand: Expr
    method: str
    argument: Expr


Expr = Literal | Var | SetExpr | Not | Binary | Has | Like | Attr | Call


@dataclass(frozen=True, slots=True)
class Scope:
    op: str | None  # None (any), "==" or "in"
    entities: tuple[Uid, ...] = ()


@dataclass(frozen=True, slots=True)
class Policy:
    effect: str
    principal: Scope
    action: Scope
    resource: Scope
    conditions: tuple[tuple[bool, Expr], ...]  # (is_when, expression)
    line: int = 0
    col: int = 0
