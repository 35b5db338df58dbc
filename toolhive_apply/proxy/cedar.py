"""A Cedar subset, parsed and evaluated in pure Python, for ToolHive-style authorization inside the proxy image.

The proxy image is standard-library only, so it cannot load the Cedar engine. This module evaluates the part of
Cedar that ToolHive's authorization model (docs/authz.md) uses, with Cedar's own semantics; a differential test
compares every decision with ``cedarpy`` (the real engine) over generated policies and requests. Policies outside
the subset are refused when the configuration is read (``unsupported()`` says where), never evaluated differently.

The subset:

* ``permit``/``forbid`` with optional ``@annotation("...")``; scope ``principal``/``resource`` unconstrained,
  ``== Entity`` or ``in Entity``; ``action`` unconstrained, ``== Entity``, ``in Entity`` or ``in [Entity, ...]``.
* ``when { e }`` / ``unless { e }``, any number. Expressions: ``||``, ``&&``, ``!``, ``==``, ``!=``, ``<``, ``<=``,
  ``>``, ``>=`` (longs), ``in`` (entity hierarchy from ``entities_json`` parents), ``has`` (identifier or string),
  ``like "pat*tern"``, ``.contains(x)``, ``.containsAll(s)``, ``.containsAny(s)``, attribute access ``x.a`` and
  ``x["a"]``, variables ``principal``, ``action``, ``resource``, ``context``, string / long (``-`` on a literal) /
  bool literals, entity literals ``Type::"id"`` (namespaced types too), set literals ``[...]``, parentheses.
* Not in the subset (refused, positioned): ``if-then-else``, arithmetic (``+ - *`` on expressions), record
  literals, ``is``, extension functions and methods (``ip``, ``decimal``, ``datetime``, ...), templates
  (``?principal``), ``has`` on attribute paths, ``isEmpty`` / ``getTag`` / ``hasTag``.

Semantics as Cedar's: a policy applies when its scope matches, every ``when`` is true and every ``unless`` is false;
a condition that errors (missing attribute, wrong type) makes its policy not apply (permit and forbid alike);
the decision is Allow when some permit applies and no forbid does (forbid wins, default deny). ``==`` between
different types is false; ``&&``/``||`` short-circuit; ``1 == true`` is false.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Union

LONG_MIN: Final = -(2**63)
LONG_MAX: Final = 2**63 - 1


class CedarError(ValueError):
    """A policy (or entity document) outside the subset or malformed; ``line``/``col`` are 1-based."""

    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        super().__init__(f"{line}:{col}: {message}" if line else message)
        self.message = message
        self.line = line
        self.col = col


class EvaluationError(Exception):
    """A condition that Cedar evaluates to an error: the policy does not apply."""


# ---------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Uid:
    type: str
    id: str

    def __str__(self) -> str:
        escaped = self.id.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.type}::"{escaped}"'


@dataclass(frozen=True, slots=True)
class CedarSet:
    items: tuple[Value, ...]


Value = Union[bool, int, str, Uid, CedarSet, "Mapping[str, Value]"]


def equal(a: Value, b: Value) -> bool:
    """Cedar ``==``: never an error; values of different types are unequal (``1 != true``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, CedarSet) and isinstance(b, CedarSet):
        return all(_member(x, b) for x in a.items) and all(_member(y, a) for y in b.items)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if type(a) is not type(b):
        return False
    return a == b


def _member(value: Value, cedar_set: CedarSet) -> bool:
    return any(equal(value, item) for item in cedar_set.items)


@dataclass(frozen=True, slots=True)
class Entity:
    uid: Uid
    attrs: Mapping[str, Value] = field(default_factory=dict)
    parents: tuple[Uid, ...] = ()


class EntityStore:
    """Entities by uid, with the transitive ancestors ``in`` follows."""

    def __init__(self, entities: Iterable[Entity]) -> None:
        self.entities: dict[Uid, Entity] = {}
        for entity in entities:
            self.entities[entity.uid] = entity
        self._ancestors: dict[Uid, frozenset[Uid]] = {}

    def ancestors(self, uid: Uid) -> frozenset[Uid]:
        cached = self._ancestors.get(uid)
        if cached is not None:
            return cached
        seen: set[Uid] = set()
        todo = list(self.entities[uid].parents) if uid in self.entities else []
        while todo:
            parent = todo.pop()
            if parent not in seen:
                seen.add(parent)
                if parent in self.entities:
                    todo.extend(self.entities[parent].parents)
        self._ancestors[uid] = frozenset(seen)
        return self._ancestors[uid]

    def is_in(self, uid: Uid, other: Uid) -> bool:
        return uid == other or other in self.ancestors(uid)


# ---------------------------------------------------------------- entities JSON


def _uid_json(raw: object, where: str) -> Uid:
    if isinstance(raw, dict) and set(raw) == {"__entity"}:
        raw = raw["__entity"]
    if not (isinstance(raw, dict) and isinstance(raw.get("type"), str) and isinstance(raw.get("id"), str)):
        raise CedarError(f'{where}: an entity uid must be {{"type": ..., "id": ...}}')
    if not _PATH.fullmatch(raw["type"]):
        raise CedarError(f"{where}: {raw['type']!r} is not an entity type name")
    return Uid(raw["type"], raw["id"])


def value_from_json(raw: object, where: str = "value") -> Value:
    """A Cedar value from Cedar's JSON attribute format (no schema): lists are sets, objects records, and
    ``{"__entity": {...}}`` an entity reference. Numbers must be 64-bit integers."""
    if isinstance(raw, bool | str):
        return raw
    if isinstance(raw, int):
        if not LONG_MIN <= raw <= LONG_MAX:
            raise CedarError(f"{where}: integer out of the 64-bit range")
        return raw
    if isinstance(raw, list):
        return CedarSet(tuple(value_from_json(v, where) for v in raw))
    if isinstance(raw, dict):
        if "__entity" in raw:
            return _uid_json(raw, where)
        if "__extn" in raw:
            raise CedarError(f"{where}: extension values are not supported")
        return {str(k): value_from_json(v, f"{where}.{k}") for k, v in raw.items()}
    raise CedarError(f"{where}: {type(raw).__name__} is not a Cedar value")


def parse_entities(raw: object) -> list[Entity]:
    """Cedar's JSON entity list (``entities_json``): ``[{"uid": {...}, "attrs": {...}, "parents": [...]}]``."""
    if not isinstance(raw, list):
        raise CedarError("entities_json must be a JSON list of entities")
    entities = []
    for index, item in enumerate(raw):
        where = f"entities[{index}]"
        if not isinstance(item, dict) or "uid" not in item:
            raise CedarError(f"{where}: must be an object with uid, attrs, parents")
        attrs = item.get("attrs") or {}
        parents = item.get("parents") or []
        if not isinstance(attrs, dict) or not isinstance(parents, list):
            raise CedarError(f"{where}: attrs must be an object and parents a list")
        values = {str(k): value_from_json(v, f"{where}.attrs.{k}") for k, v in attrs.items()}
        entities.append(Entity(_uid_json(item["uid"], where), values, tuple(_uid_json(p, where) for p in parents)))
    return entities


# ---------------------------------------------------------------- tokens

_TOKEN: Final = re.compile(
    r"""(?P<space>[ \t\r\n]+)|(?P<comment>//[^\n]*)|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<int>[0-9]+)
    |(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>==|!=|<=|>=|&&|\|\||::|[(){}\[\],;.<>!@\-+*?%&|=:])""",
    re.VERBOSE | re.DOTALL,
)
_PATH: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*")
_RESERVED: Final = frozenset({"true", "false", "if", "then", "else", "in", "like", "has", "is", "__cedar"})
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


# ---------------------------------------------------------------- syntax tree


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


_METHODS: Final = ("contains", "containsAll", "containsAny")
_RELATIONS: Final = ("==", "!=", "<", "<=", ">", ">=", "in")


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.position = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.position]

    def fail(self, message: str, token: Token | None = None) -> CedarError:
        at = token or self.token
        return CedarError(message, at.line, at.col)

    def take(self) -> Token:
        token = self.token
        if token.kind != "end":
            self.position += 1
        return token

    def accept(self, text: str) -> bool:
        if self.token.text == text and self.token.kind in ("op", "ident"):
            self.position += 1
            return True
        return False

    def expect(self, text: str) -> Token:
        if self.token.text != text or self.token.kind not in ("op", "ident"):
            shown = self.token.text or "end of policy"
            raise self.fail(f"expected {text!r}, found {shown!r}")
        return self.take()

    def policies(self) -> list[Policy]:
        found = []
        while self.token.kind != "end":
            found.append(self.policy())
        return found

    def policy(self) -> Policy:
        start = self.token
        while self.accept("@"):
            name = self.take()
            if name.kind != "ident":
                raise self.fail("expected an annotation name", name)
            if self.accept("("):
                if self.take().kind != "string":
                    raise self.fail("an annotation value must be a string", self.tokens[self.position - 1])
                self.expect(")")
        effect = self.take()
        if effect.text not in ("permit", "forbid") or effect.kind != "ident":
            raise self.fail("a policy starts with permit or forbid", effect)
        self.expect("(")
        principal = self.scope("principal")
        self.expect(",")
        action = self.scope("action")
        self.expect(",")
        resource = self.scope("resource")
        self.accept(",")
        self.expect(")")
        conditions = []
        while self.token.text in ("when", "unless") and self.token.kind == "ident":
            is_when = self.take().text == "when"
            self.expect("{")
            if self.token.text == "}":
                raise self.fail("a condition needs an expression")
            conditions.append((is_when, self.expression()))
            self.expect("}")
        self.expect(";")
        return Policy(effect.text, principal, action, resource, tuple(conditions), start.line, start.col)

    def scope(self, variable: str) -> Scope:
        self.expect(variable)
        if self.token.text == "is" and self.token.kind == "ident":
            raise self.fail("'is' is not in the supported Cedar subset")
        if self.accept("=="):
            return Scope("==", (self.entity(),))
        if self.accept("in"):
            if variable == "action" and self.accept("["):
                items = []
                if self.token.text != "]":
                    items.append(self.entity())
                    while self.accept(","):
                        items.append(self.entity())
                self.expect("]")
                return Scope("in", tuple(items))
            return Scope("in", (self.entity(),))
        return Scope(None)

    def entity(self) -> Uid:
        if self.token.text == "?":
            raise self.fail("policy templates (?principal, ?resource) are not in the supported Cedar subset")
        first = self.take()
        if first.kind != "ident" or first.text in _RESERVED:
            raise self.fail('expected an entity such as Type::"id"', first)
        return self.entity_rest(first)

    def entity_rest(self, first: Token) -> Uid:
        names = [first.text]
        while True:
            self.expect("::")
            part = self.take()
            if part.kind == "string":
                return Uid("::".join(names), unescape(part))
            if part.kind != "ident" or part.text in _RESERVED:
                raise self.fail("expected a type name or a string id", part)
            names.append(part.text)

    # expressions -------------------------------------------------------

    def expression(self) -> Expr:
        if self.token.text == "if" and self.token.kind == "ident":
            raise self.fail("if-then-else is not in the supported Cedar subset")
        left = self.conjunction()
        while self.accept("||"):
            left = Binary("||", left, self.conjunction())
        return left

    def conjunction(self) -> Expr:
        left = self.relation()
        while self.accept("&&"):
            left = Binary("&&", left, self.relation())
        return left

    def relation(self) -> Expr:
        left = self.additive()
        token = self.token
        if (token.kind == "op" and token.text in _RELATIONS) or (token.kind == "ident" and token.text == "in"):
            self.take()
            return Binary(token.text, left, self.additive())
        if token.kind == "ident" and token.text == "has":
            self.take()
            attr = self.take()
            if attr.kind == "string":
                name = unescape(attr)
            elif attr.kind == "ident":
                name = attr.text
            else:
                raise self.fail("expected an attribute name after has", attr)
            if self.token.text == ".":
                raise self.fail("'has' on an attribute path is not in the supported Cedar subset")
            return Has(left, name)
        if token.kind == "ident" and token.text == "like":
            self.take()
            pattern = self.take()
            if pattern.kind != "string":
                raise self.fail("like needs a string pattern", pattern)
            return Like(left, tuple(string_parts(pattern, pattern=True)))
        if token.kind == "ident" and token.text == "is":
            raise self.fail("'is' is not in the supported Cedar subset")
        return left

    def additive(self) -> Expr:
        value = self.unary()
        if self.token.kind == "op" and self.token.text in ("+", "-", "*"):
            raise self.fail(f"arithmetic ({self.token.text}) is not in the supported Cedar subset")
        return value

    def unary(self) -> Expr:
        if self.token.kind == "op" and self.token.text == "!":
            nots = 0
            while self.accept("!"):
                nots += 1
                if nots > 4:
                    raise self.fail("too many '!' in a row")
            operand = self.member()
            for _ in range(nots):
                operand = Not(operand)
            return operand
        if self.token.kind == "op" and self.token.text == "-":
            minus = self.take()
            number = self.token
            if number.kind != "int":
                raise self.fail("negation is supported only on a number literal", minus)
            self.take()
            value = -int(number.text)
            if value < LONG_MIN:
                raise self.fail("integer literal out of the 64-bit range", number)
            return self.accesses(Literal(value))
        return self.member()

    def member(self) -> Expr:
        return self.accesses(self.primary())

    def accesses(self, operand: Expr) -> Expr:
        while True:
            if self.accept("."):
                name = self.take()
                if name.kind != "ident":
                    raise self.fail("expected an attribute or method name", name)
                if self.token.text == "(":
                    if name.text not in _METHODS:
                        raise self.fail(f"method {name.text!r} is not in the supported Cedar subset", name)
                    self.expect("(")
                    argument = self.expression()
                    self.expect(")")
                    operand = Call(operand, name.text, argument)
                else:
                    operand = Attr(operand, name.text)
            elif self.token.text == "[" and self.token.kind == "op":
                self.take()
                key = self.take()
                if key.kind != "string":
                    raise self.fail("expected a string index", key)
                self.expect("]")
                operand = Attr(operand, unescape(key))
            else:
                return operand

    def primary(self) -> Expr:  # noqa: C901 - one case per kind of primary
        token = self.take()
        if token.kind == "int":
            value = int(token.text)
            if value > LONG_MAX:
                raise self.fail("integer literal out of the 64-bit range", token)
            return Literal(value)
        if token.kind == "string":
            return Literal(unescape(token))
        if token.kind == "ident":
            if token.text in ("true", "false"):
                return Literal(token.text == "true")
            if self.token.text == "::":
                return Literal(self.entity_rest(token))
            if token.text in VARIABLES:
                return Var(token.text)
            if self.token.text == "(":
                raise self.fail(f"function {token.text!r} is not in the supported Cedar subset", token)
            raise self.fail(f"unknown name {token.text!r}", token)
        if token.text == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        if token.text == "[":
            items = []
            if self.token.text != "]":
                items.append(self.expression())
                while self.accept(","):
                    items.append(self.expression())
            self.expect("]")
            return SetExpr(tuple(items))
        if token.text == "{":
            raise self.fail("record literals are not in the supported Cedar subset", token)
        if token.text == "?":
            raise self.fail("policy templates are not in the supported Cedar subset", token)
        raise self.fail(f"unexpected {token.text or 'end of policy'!r}", token)


def _like(value: str, pattern: Sequence[str | None]) -> bool:
    """Glob match (``*`` any run of characters) by dynamic programming: linear memory, no backtracking blow-up."""
    reachable = [True] + [False] * len(value)  # reachable[j]: pattern prefix matches value[:j]
    for part in pattern:
        if part is None:
            for j in range(1, len(value) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            reachable = [False] + [reachable[j - 1] and value[j - 1] == part for j in range(1, len(value) + 1)]
    return reachable[len(value)]


# ---------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class Request:
    principal: Uid
    action: Uid
    resource: Uid
    context: Mapping[str, Value] = field(default_factory=dict)


class _Evaluator:
    def __init__(self, request: Request, store: EntityStore) -> None:
        self.request = request
        self.store = store

    def boolean(self, expr: Expr) -> bool:
        value = self.eval(expr)
        if not isinstance(value, bool):
            raise EvaluationError("not a boolean")
        return value

    def eval(self, expr: Expr) -> Value:  # noqa: C901 - one case per node type
        if isinstance(expr, Literal):
            return expr.value
        if isinstance(expr, Var):
            if expr.name == "context":
                return self.request.context
            uid: Uid = getattr(self.request, expr.name)
            return uid
        if isinstance(expr, SetExpr):
            return CedarSet(tuple(self.eval(item) for item in expr.items))
        if isinstance(expr, Not):
            return not self.boolean(expr.operand)
        if isinstance(expr, Binary):
            return self.binary(expr)
        if isinstance(expr, Has):
            target = self.eval(expr.operand)
            if isinstance(target, Uid):
                entity = self.store.entities.get(target)
                return entity is not None and expr.attr in entity.attrs
            if isinstance(target, Mapping):
                return expr.attr in target
            raise EvaluationError("has on a value that is neither an entity nor a record")
        if isinstance(expr, Like):
            target = self.eval(expr.operand)
            if not isinstance(target, str):
                raise EvaluationError("like on a non-string")
            return _like(target, expr.pattern)
        if isinstance(expr, Attr):
            return self.attribute(self.eval(expr.operand), expr.attr)
        return self.call(expr)

    def attribute(self, target: Value, name: str) -> Value:
        if isinstance(target, Uid):
            entity = self.store.entities.get(target)
            if entity is None:
                raise EvaluationError("entity does not exist")
            attrs = entity.attrs
        elif isinstance(target, Mapping):
            attrs = target
        else:
            raise EvaluationError("attribute of a value that is neither an entity nor a record")
        if name not in attrs:
            raise EvaluationError(f"no attribute {name}")
        return attrs[name]

    def call(self, expr: Call) -> Value:
        target = self.eval(expr.operand)
        argument = self.eval(expr.argument)
        if not isinstance(target, CedarSet):
            raise EvaluationError(f"{expr.method} on a non-set")
        if expr.method == "contains":
            return _member(argument, target)
        if not isinstance(argument, CedarSet):
            raise EvaluationError(f"{expr.method} needs a set argument")
        if expr.method == "containsAll":
            return all(_member(item, target) for item in argument.items)
        return any(_member(item, target) for item in argument.items)

    def binary(self, expr: Binary) -> Value:
        if expr.op == "&&":
            return self.boolean(expr.left) and self.boolean(expr.right)
        if expr.op == "||":
            return self.boolean(expr.left) or self.boolean(expr.right)
        left, right = self.eval(expr.left), self.eval(expr.right)
        if expr.op == "==":
            return equal(left, right)
        if expr.op == "!=":
            return not equal(left, right)
        if expr.op == "in":
            return self.is_in(left, right)
        if not (_is_long(left) and _is_long(right)):
            raise EvaluationError("comparison of non-longs")
        assert isinstance(left, int) and isinstance(right, int)
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[expr.op]

    def is_in(self, left: Value, right: Value) -> bool:
        if not isinstance(left, Uid):
            raise EvaluationError("in needs an entity on the left")
        if isinstance(right, Uid):
            return self.store.is_in(left, right)
        if isinstance(right, CedarSet):
            targets = right.items
            if not all(isinstance(t, Uid) for t in targets):
                raise EvaluationError("in needs a set of entities")
            return any(self.store.is_in(left, t) for t in targets if isinstance(t, Uid))
        raise EvaluationError("in needs an entity or a set of entities on the right")


def _is_long(value: Value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _scope_matches(scope: Scope, uid: Uid, store: EntityStore) -> bool:
    if scope.op is None:
        return True
    if scope.op == "==":
        return uid == scope.entities[0]
    return any(store.is_in(uid, target) for target in scope.entities)


@dataclass(frozen=True, slots=True)
class PolicySet:
    policies: tuple[Policy, ...]

    @classmethod
    def parse(cls, *texts: str) -> PolicySet:
        """Every policy in ``texts`` (each may hold several), or CedarError at the first one outside the subset."""
        found: list[Policy] = []
        for text in texts:
            found.extend(_Parser(text).policies())
        return cls(tuple(found))

    def applies(self, policy: Policy, request: Request, store: EntityStore) -> bool:
        if not (
            _scope_matches(policy.principal, request.principal, store)
            and _scope_matches(policy.action, request.action, store)
            and _scope_matches(policy.resource, request.resource, store)
        ):
            return False
        evaluator = _Evaluator(request, store)
        try:
            return all(evaluator.boolean(expr) == is_when for is_when, expr in policy.conditions)
        except EvaluationError:
            return False  # Cedar skips a policy whose condition errors

    def is_authorized(self, request: Request, store: EntityStore) -> bool:
        """Forbid wins, then any permit, else deny."""
        permitted = False
        for policy in self.policies:
            if self.applies(policy, request, store):
                if policy.effect == "forbid":
                    return False
                permitted = True
        return permitted


def unsupported(policy_text: str) -> list[tuple[int, int, str]]:
    """Where ``policy_text`` leaves the subset the proxy evaluates (or is not Cedar at all): ``(line, col, message)``
    with 1-based positions, empty when every policy in it is supported. For ``validate`` on the host side."""
    try:
        _Parser(policy_text).policies()
    except CedarError as error:
        return [(error.line, error.col, error.message)]
    return []


def iter_uids(policies: PolicySet) -> Iterator[Uid]:
    """Every entity named in the policies' scopes (for documentation and checks)."""
    for policy in policies.policies:
        for scope in (policy.principal, policy.action, policy.resource):
            yield from scope.entities


def value_from_claim(raw: object) -> Value | None:
    """A JWT claim or tool argument as a Cedar value, as ToolHive converts them: strings, booleans, integers
    (integral floats too), lists as sets and objects as records; what Cedar cannot hold (null, fractions, numbers
    beyond 64 bits) is left out (None), so a policy reading it errors and does not apply."""
    if isinstance(raw, bool | str):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, int):
        return raw if LONG_MIN <= raw <= LONG_MAX else None
    if isinstance(raw, list):
        items = [value_from_claim(v) for v in raw]
        return CedarSet(tuple(v for v in items if v is not None))
    if isinstance(raw, dict):
        record = {str(k): value_from_claim(v) for k, v in raw.items()}
        return {k: v for k, v in record.items() if v is not None}
    return None


def prefixed(prefix: str, values: Mapping[str, Any] | None) -> dict[str, Value]:
    converted = {f"{prefix}{k}": value_from_claim(v) for k, v in (values or {}).items()}
    return {k: v for k, v in converted.items() if v is not None}


def entity_json(entity: Entity) -> dict[str, Any]:
    """Cedar's JSON entity format (for the differential test and for debugging)."""
    return {
        "uid": {"type": entity.uid.type, "id": entity.uid.id},
        "attrs": {k: value_to_json(v) for k, v in entity.attrs.items()},
        "parents": [{"type": p.type, "id": p.id} for p in entity.parents],
    }


def value_to_json(value: Value) -> Any:
    if isinstance(value, Uid):
        return {"__entity": {"type": value.type, "id": value.id}}
    if isinstance(value, CedarSet):
        return [value_to_json(v) for v in value.items]
    if isinstance(value, Mapping):
        return {k: value_to_json(v) for k, v in value.items()}
    return value
