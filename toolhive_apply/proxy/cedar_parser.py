"""The parser of the Cedar subset (see ``cedar.py``): policy text to ``Policy`` trees, or a ``CedarError`` at the
first construct outside the subset, positioned. ``unsupported`` is what ``validate`` asks on the host side."""

from __future__ import annotations

from typing import Final

from toolhive_apply.proxy.cedar_syntax import (
    RESERVED,
    VARIABLES,
    Attr,
    Binary,
    Call,
    Expr,
    Has,
    Like,
    Literal,
    Not,
    Policy,
    Scope,
    SetExpr,
    Token,
    Var,
    string_parts,
    tokenize,
    unescape,
)
from toolhive_apply.proxy.cedar_values import LONG_MAX, LONG_MIN, CedarError, Uid

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
        if first.kind != "ident" or first.text in RESERVED:
            raise self.fail('expected an entity such as Type::"id"', first)
        return self.entity_rest(first)

    def entity_rest(self, first: Token) -> Uid:
        names = [first.text]
        while True:
            self.expect("::")
            part = self.take()
            if part.kind == "string":
                return Uid("::".join(names), unescape(part))
            if part.kind != "ident" or part.text in RESERVED:
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


def parse_policies(text: str) -> list[Policy]:
    """Every policy in ``text``, or CedarError at the first one outside the subset."""
    return _Parser(text).policies()


def unsupported(policy_text: str) -> list[tuple[int, int, str]]:
    """Where ``policy_text`` leaves the subset the proxy evaluates (or is not Cedar at all): ``(line, col, message)``
    with 1-based positions, empty when every policy in it is supported. For ``validate`` on the host side."""
    try:
        parse_policies(policy_text)
    except CedarError as error:
        return [(error.line, error.col, error.message)]
    return []
