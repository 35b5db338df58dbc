"""The template sandbox with bounds: every value a template makes, and all the work of one manifest's render.

Jinja2's sandbox stops escapes (walks to classes, globals, builtins), not exhaustion: `center(10**9)`, `'%9999999d'`,
`~` doubling in a loop, chained `**`, nested loops, `[a, a]` nested until a comparison takes forever. Here every
way a template can make or repeat work passes one Budget, and every value it makes is measured:

- each value (a string's characters, a container's items counted through every level, as `str()` would write
  them) may be at most MAX_VALUE; literals, operator results, filter and method results, `~`, `{{ }}` output and
  the rendered string are all measured when made, so no later operation can meet a bigger one;
- what would grow beyond that from a small input (widths, `replace`, `join`, `%`/`format` widths, repetition,
  powers, `sum` of lists) is predicted and refused before it runs;
- operations, loop iterations, compiled templates and the size of what is made are charged to MAX_WORK units
  for the whole manifest, so many small steps stop as surely as one big one;
- only analysed filters and methods are offered: `urlize` and `lipsum` (argument-driven growth with no use in a
  manifest) and methods such as `encode` or `translate` are not available.

Everything refused raises SandboxLimitError, reported as "refused by the sandbox" at the field's position.
"""

from __future__ import annotations

import functools
import inspect
import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from string import Formatter
from typing import Any

import markupsafe
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import Namespace, _PassArg

from toolhive_apply.manifest.sandbox_limits import (
    CALL_COST,
    CHARS_PER_UNIT,
    COMPILE_COST,
    FILTER_CHECKS,
    FILTERS,
    MAX_INT_BITS,
    MAX_VALUE,
    MAX_WORK,
    OTHER_METHODS,
    PASSED_NAMES,
    STR_METHOD_CHECKS,
    STR_METHODS,
    TOKEN_COST,
    Budget,
    SandboxLimitError,
    Sizes,
    bounded_count,
    capped_pprint,
    capped_tojson,
    check_percent,
    fits,
    refuse,
)

__all__ = ["MAX_VALUE", "MAX_WORK", "BoundedSandbox", "Budget", "SandboxLimitError"]


class _BoundedFormatter(SandboxedFormatter):
    """str.format in the sandbox, with each field's width checked and the whole result capped as it grows."""

    def __init__(self, env: BoundedSandbox, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self._bounded = env
        self._written = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        for number in re.findall(r"\d+", format_spec):
            bounded_count(number, "a format width or precision of")
        self._bounded.sizes.measure(value)
        result = super().format_field(value, format_spec)
        self._written += len(result)
        if self._written > MAX_VALUE:
            raise refuse(f"format would write more than {MAX_VALUE} characters")
        return result


class _BoundedEscapeFormatter(_BoundedFormatter, SandboxedEscapeFormatter):
    pass


# -- the compiled template ---------------------------------------------------------------------------------------
def _environment_call(name: str, node: nodes.Expr) -> nodes.Call:
    return nodes.Call(nodes.EnvironmentAttribute(name), [node], [], None, None, lineno=node.lineno)


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with loops, `~` and literals routed through the environment's bounds."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:  # noqa: N802 - Jinja's visitor names
        iterable = node.iter
        callee = iterable.node if isinstance(iterable, nodes.Call) else None
        if not (isinstance(callee, nodes.EnvironmentAttribute) and callee.name == "sandbox_iter"):
            node.iter = _environment_call("sandbox_iter", iterable)  # type: ignore[arg-type]
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802
        self.write("environment.sandbox_made(")
        super().visit_Concat(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:  # noqa: N802
        self.write("environment.sandbox_made(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:  # noqa: N802
        self.write("environment.sandbox_made(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:  # noqa: N802
        if node.ctx != "load":  # an assignment target (`for a, b in ...`) is no value
            super().visit_Tuple(node, frame)
            return
        self.write("environment.sandbox_made(")
        super().visit_Tuple(node, frame)
        self.write(")")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus the bounds above; one instance renders one manifest and owns its Budget."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self, budget: Budget | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.budget = budget or Budget()
        self.sizes = Sizes(self.budget)
        self.finalize = self.sandbox_made
        self.concat = self._concat  # type: ignore[method-assign]
        self.globals.pop("lipsum", None)
        self.globals["range"] = self._range
        filters = {name: self.filters[name] for name in FILTERS}
        filters["pprint"] = capped_pprint
        filters["tojson"] = capped_tojson
        self.filters = {name: self._bounded_filter(name, f) for name, f in filters.items()}
        self.tests = {name: self._bounded_test(test) for name, test in dict(self.tests).items()}  # type: ignore[arg-type]

    # -- what every operation passes ---------------------------------------------------------------------------
    def sandbox_made(self, value: Any) -> Any:
        """A value the template made: measured (refused if too big) and its new nodes charged; a string by its
        length too, as a rendered text is. Why: strings made but not yet rendered are held in memory (a macro that
        recurses holds every level's), so what the budget allows must bound what they take, not only the calls
        that made them (a hypothesis search found a recursive macro of `'x'.center(100000)` reaching 66 MB within
        a budget of 20,000 units)."""
        self.budget.charge(1 + (len(value) // CHARS_PER_UNIT if isinstance(value, str) else 0))
        self.sizes.measure(value)
        return value

    def sandbox_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.budget.charge(1)
            yield item

    def _concat(self, pieces: Iterable[str]) -> str:
        """Every rendered string (templates, macros, set blocks): capped as it is joined."""
        parts: list[str] = []
        total = 0
        for piece in pieces:
            total += len(piece)
            if total > MAX_VALUE:
                raise refuse(f"the rendered text would be longer than {MAX_VALUE} characters")
            parts.append(piece)
        self.budget.charge(total // CHARS_PER_UNIT + 1)
        return "".join(parts)

    def _range(self, *args: int) -> range:
        try:
            result = range(*args)
            length = len(result)
        except OverflowError:
            raise refuse("range too large") from None
        fits(length, "range")
        return result

    def charge_compile(self, source: str) -> None:
        """Before a template is compiled: a fixed cost, then its tokens, counted as they are lexed (so a huge dense
        template is refused partway through lexing, never compiled)."""
        self.budget.charge(COMPILE_COST + len(source) // CHARS_PER_UNIT)
        tokens = 0
        for _ in self.lex(source):
            tokens += 1
            if tokens % 256 == 0:
                self.budget.charge(256 * TOKEN_COST)
        self.budget.charge(tokens % 256 * TOKEN_COST)

    def _bounded_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        check = FILTER_CHECKS.get(name)
        signature = inspect.signature(func)
        # Jinja's async-capable filters take the eval context their (wrapped) signature does not show
        first = next(iter(signature.parameters), "")
        hidden = 1 if _PassArg.from_obj(func) is not None and first not in PASSED_NAMES else 0

        @functools.wraps(func)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            self._charge_call(args, kwargs)
            if check is not None:
                bound = signature.bind(*args[hidden:], **kwargs)
                check(self.sizes, bound)
                args, kwargs = (*args[:hidden], *bound.args), bound.kwargs
            return self.sandbox_made(func(*args, **kwargs))

        return bounded

    def _bounded_test(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            self.budget.charge(1)
            return func(*args, **kwargs)

        return bounded

    def _charge_call(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """A call, plus the nodes of every argument: an operation may walk all of them."""
        self.budget.charge(CALL_COST + sum(self.sizes.nodes(a) for a in (*args, *kwargs.values()) if _is_value(a)))

    # -- Jinja's sandbox hooks ---------------------------------------------------------------------------------
    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.budget.charge(1)
        self._check_binop(operator, left, right)
        return self.sandbox_made(self.binop_table[operator](left, right))

    def _check_binop(self, operator: str, left: Any, right: Any) -> None:
        sequences = (str, list, tuple)
        if operator == "**" and _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
            if (abs(left).bit_length() - 1) * right > MAX_INT_BITS:
                raise refuse(f"an exponent of {right} makes an integer over {MAX_INT_BITS} bits")
        elif operator == "*":
            for sized, count in ((left, right), (right, left)):
                if isinstance(sized, sequences) and _is_int(count):
                    fits(self.sizes.size(sized) * max(count, 0), "this repetition")
            if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise refuse(f"a product of more than {MAX_INT_BITS} bits")
        elif operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
            fits(self.sizes.size(left) + self.sizes.size(right), "this concatenation")
        elif operator == "%" and isinstance(left, str):
            check_percent(self.sizes, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's names
        __self._charge_call(args, kwargs)
        return __self.sandbox_made(super().call(__context, __obj, *args, **kwargs))

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Of the methods of plain values, only the analysed ones (str methods that grow are wrapped instead)."""
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if not callable(value):
            return True
        if isinstance(obj, str):
            return attr in STR_METHODS
        allowed = next((names for kind, names in OTHER_METHODS.items() if isinstance(obj, kind)), None)
        return allowed is None or attr in allowed

    def wrap_str_format(self, value: Any) -> Callable[..., Any] | None:
        """str.format/format_map through the bounded formatter; growing str methods behind their checks."""
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)):
            return None
        owner = getattr(value, "__self__", None)
        if not isinstance(owner, str):
            return None
        name = value.__name__
        if name in ("format", "format_map"):
            return self._bounded_format(owner, value, name == "format_map")
        check = STR_METHOD_CHECKS.get(name)
        if check is None:
            return None

        @functools.wraps(value)
        def checked(*args: Any, **kwargs: Any) -> Any:
            check(self.sizes, owner, *args, **kwargs)
            return value(*args, **kwargs)

        return checked

    def _bounded_format(self, owner: str, method: Any, is_map: bool) -> Callable[..., str]:
        def formatted(*args: Any, **kwargs: Any) -> str:
            formatter: Formatter
            if isinstance(owner, markupsafe.Markup):
                formatter = _BoundedEscapeFormatter(self, escape=owner.escape)
            else:
                formatter = _BoundedFormatter(self)
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                return type(owner)(formatter.vformat(owner, (), args[0]))
            return type(owner)(formatter.vformat(owner, args, kwargs))

        return functools.update_wrapper(formatted, method)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_value(value: Any) -> bool:
    """Data a call may walk (not the context or environment Jinja passes to some filters)."""
    return isinstance(value, (str, int, float, list, tuple, dict, range, Namespace)) or value is None
