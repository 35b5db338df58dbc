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
import io
import json
import pprint
import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from string import Formatter
from typing import Any, Final

import markupsafe
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.environment import Environment
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import Namespace, _PassArg, pass_environment

MAX_VALUE: Final = 256 * 1024  # characters of a string, or items (through every level) of a container
MAX_WORK: Final = 1_000_000  # units (below) for a whole manifest's render: about a second
MAX_INT_BITS: Final = 4096
# a unit is roughly a microsecond: a loop step, an operator, a measured item or 16 characters cost one; a call
# (function, macro, filter, method) several; compiling a template (about a millisecond) many
CALL_COST: Final = 4
COMPILE_COST: Final = 600
TOKEN_COST: Final = 15  # compiling costs about 10-20 microseconds a token on top
CHARS_PER_UNIT: Final = 16

FILTERS: Final = frozenset(
    {
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
        "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "items", "join",
        "last", "length", "list", "lower", "map", "max", "min", "pprint", "random", "reject", "rejectattr",
        "replace", "reverse", "round", "safe", "select", "selectattr", "slice", "sort", "string", "striptags",
        "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "urlencode", "wordcount", "wordwrap",
        "xmlattr",
    }
)  # fmt: skip
STR_METHODS: Final = frozenset(
    {
        "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha", "isascii",
        "isdecimal", "isdigit", "isidentifier", "islower", "isnumeric", "isprintable", "isspace", "istitle",
        "isupper", "lower", "lstrip", "partition", "removeprefix", "removesuffix", "rfind", "rindex", "rpartition",
        "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper",
        "striptags", "unescape",
    }
)  # fmt: skip
OTHER_METHODS: Final[Mapping[type, frozenset[str]]] = {
    dict: frozenset({"get", "items", "keys", "values", "copy"}),
    list: frozenset({"count", "index", "copy"}),
    tuple: frozenset({"count", "index"}),
    range: frozenset({"count", "index"}),
    int: frozenset({"bit_length"}),
    bool: frozenset(),
    float: frozenset({"is_integer"}),
    bytes: frozenset(),
}
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([diouxXeEfFgGcrsa%])")
_FLOATS = frozenset("eEfFgG")
_PASSED_NAMES = frozenset({"context", "eval_ctx", "environment", "env"})


class SandboxLimitError(SecurityError):
    """A template would make too big a value or do too much work."""


def _refuse(message: str) -> SandboxLimitError:
    return SandboxLimitError(message)


class Budget:
    """Work units spent by one manifest's render."""

    def __init__(self, limit: int = MAX_WORK) -> None:
        self.limit = limit
        self.spent = 0

    def charge(self, units: int) -> None:
        self.spent += units
        if self.spent > self.limit:
            raise _refuse(
                f"the manifest's templates need more than {self.limit} units of work (loop steps, calls, templates "
                "compiled and values made are counted, for the whole manifest)"
            )


class Sizes:
    """Deep size (as `str()` would write it, roughly) and node count of values, memoized by identity.

    Template-made containers cannot change after they are made (the immutable sandbox), so a container measured
    once keeps its size; the memo holds a reference so an id is never reused while the render runs. A Namespace
    can change (`{% set ns.x = ... %}`) and is measured afresh each time.
    """

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._memo: dict[int, tuple[object, int, int]] = {}

    def measure(self, value: object) -> tuple[int, int]:
        """(size, nodes); refuses a value bigger than MAX_VALUE. New nodes walked are charged."""
        if isinstance(value, str):
            if len(value) > MAX_VALUE:
                raise _refuse(f"a string of {len(value)} characters (the sandbox allows {MAX_VALUE})")
            return len(value), len(value) // CHARS_PER_UNIT + 1
        if isinstance(value, bool) or value is None:
            return 5, 1
        if isinstance(value, int):
            if value.bit_length() > MAX_INT_BITS:
                raise _refuse(f"an integer of {value.bit_length()} bits (the sandbox allows {MAX_INT_BITS})")
            digits = value.bit_length() // 3 + 1
            return digits, digits // CHARS_PER_UNIT + 1
        if isinstance(value, float):
            return 24, 1
        if isinstance(value, (list, tuple, dict, range, Namespace)):
            return self._container(value)
        return 16, 1

    def _container(self, value: list[Any] | tuple[Any, ...] | dict[Any, Any] | range | Namespace) -> tuple[int, int]:
        hit = self._memo.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1], hit[2]
        if isinstance(value, range):  # lazy: what it makes is measured when something makes it
            size, count = len(value) + 2, len(value) + 1
        else:
            size, count = 2, 1
            self._memo[id(value)] = (value, 16, 1)  # a cycle (a Namespace holding itself) prints as "..."
            for item in _items(value):
                item_size, item_nodes = self.measure(item)
                size += item_size + 2
                count += item_nodes
                if size > MAX_VALUE:
                    del self._memo[id(value)]
                    raise _refuse(f"a value of more than {MAX_VALUE} characters or items")
            self.budget.charge(len(value) if not isinstance(value, Namespace) else 1)
        if size > MAX_VALUE:
            raise _refuse(f"a value of more than {MAX_VALUE} characters or items")
        if isinstance(value, Namespace):
            self._memo.pop(id(value), None)
        else:
            self._memo[id(value)] = (value, size, count)
        return size, count

    def size(self, value: object) -> int:
        return self.measure(value)[0]

    def nodes(self, value: object) -> int:
        return self.measure(value)[1]


def _items(value: list[Any] | tuple[Any, ...] | dict[Any, Any] | Namespace) -> Iterator[Any]:
    if isinstance(value, Namespace):
        value = object.__getattribute__(value, "_Namespace__attrs")
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield item
    elif isinstance(value, (list, tuple)):
        yield from value


def _count(value: Any, what: str) -> int:
    """A width or count argument: an int (or int-like) no bigger than MAX_VALUE."""
    number = int(value)
    if number > MAX_VALUE:
        raise _refuse(f"{what} {number} is too large (the sandbox allows {MAX_VALUE})")
    return number


def _fits(predicted: int, what: str) -> None:
    if predicted > MAX_VALUE:
        raise _refuse(f"{what} would make a value of {predicted} characters or items (the sandbox allows {MAX_VALUE})")


def check_percent(sizes: Sizes, fmt: str, args: Any) -> None:
    """`fmt % args`: widths and precisions, then the largest text the conversions could write."""
    predicted = len(fmt) + 4 * sizes.size(args)
    for match in _PERCENT.finditer(fmt):
        width, precision, conversion = match.groups()
        if "*" in (width, precision):
            raise _refuse("a `*` width or precision in %-formatting")
        predicted += _count(width or 0, "a width of") + _count(precision or 0, "a precision of")
        predicted += 320 if conversion in _FLOATS else 0  # '%f' % 1e308 writes 309 digits
    _fits(predicted, "this %-formatting")


def _check_replace(sizes: Sizes, s: Any, old: Any, new: Any, count: Any = None) -> None:
    text, old_text, new_text = str(s), str(old), str(new)
    occurrences = text.count(old_text) if old_text else len(text) + 1
    if count is not None and int(count) >= 0:
        occurrences = min(occurrences, int(count))
    _fits(len(text) + occurrences * max(0, len(new_text) - len(old_text)), "replace")


def _check_join(sizes: Sizes, separator: str, items: list[Any]) -> None:
    _fits(sum(sizes.size(i) for i in items) + len(separator) * len(items), "join")


def _check_width(sizes: Sizes, s: Any, width: Any, what: str) -> None:
    _fits(max(sizes.size(s), _count(width, f"{what} width")), what)


# -- filters -------------------------------------------------------------------------------------------------------
FilterCheck = Callable[[Sizes, inspect.BoundArguments], None]


def _f_center(sizes: Sizes, bound: inspect.BoundArguments) -> None:
    _check_width(sizes, bound.arguments["value"], bound.arguments.get("width", 80), "center")


def _f_indent(sizes: Sizes, bound: inspect.BoundArguments) -> None:
    text = str(bound.arguments["s"])
    width = bound.arguments.get("width", 4)
    per_line = len(width) if isinstance(width, str) else _count(width, "an indent of")
    _fits(len(text) + (text.count("\n") + 1) * per_line, "indent")


def _f_format(sizes: Sizes, bound: inspect.BoundArguments) -> None:
    check_percent(sizes, str(bound.arguments["value"]), bound.arguments.get("kwargs") or bound.arguments.get("args"))


def _f_replace(sizes: Sizes, bound: inspect.BoundArguments) -> None:
    a = bound.arguments
    _check_replace(sizes, a["s"], a["old"], a["new"], a.get("count"))


def _f_batch(sizes: Sizes, bound: inspect.BoundArguments) -> None:
    _count(bound.arguments["linecount"], "a batch of")


def _f_slice(sizes: Sizes, bound: inspect.BoundArguments) -> None:
    _count(bound.arguments["slices"], "a slice count of")


def _f_wordwrap(sizes: Sizes, bound: inspect.BoundArguments) -> None:
    a = bound.arguments
    text = str(a["s"])
    wrap = a.get("wrapstring") or "\n"
    lines = len(text.split()) + len(text) // max(1, int(a.get("width", 79))) + 1
    _fits(len(text) + lines * len(str(wrap)), "wordwrap")


def _materialize(bound: inspect.BoundArguments, name: str) -> list[Any]:
    items = list(bound.arguments[name])
    bound.arguments[name] = items
    return items


def _f_join(sizes: Sizes, bound: inspect.BoundArguments) -> None:
    _check_join(sizes, str(bound.arguments.get("d", "")), _materialize(bound, "value"))


def _f_sum(sizes: Sizes, bound: inspect.BoundArguments) -> None:
    start = bound.arguments.get("start", 0)
    items = _materialize(bound, "iterable")
    if isinstance(start, (list, tuple, str)):  # sum() copies the growing sequence at every step
        total = sizes.size(start) + sum(sizes.size(i) for i in items)
        _fits(total, "sum")
        sizes.budget.charge(len(items) * total // CHARS_PER_UNIT)


FILTER_CHECKS: Final[Mapping[str, FilterCheck]] = {
    "center": _f_center,
    "indent": _f_indent,
    "format": _f_format,
    "replace": _f_replace,
    "batch": _f_batch,
    "slice": _f_slice,
    "wordwrap": _f_wordwrap,
    "join": _f_join,
    "sum": _f_sum,
}


class _CappedText(io.StringIO):
    """A stream that refuses to hold more than MAX_VALUE characters (pprint writes to one as it goes)."""

    def write(self, text: str) -> int:
        if self.tell() + len(text) > MAX_VALUE:
            raise _refuse(f"pprint would write more than {MAX_VALUE} characters")
        return super().write(text)


def capped_pprint(value: Any) -> str:
    """Jinja's `pprint` (pformat), written piece by piece into a capped buffer."""
    stream = _CappedText()
    pprint.PrettyPrinter(stream=stream).pprint(value)
    return stream.getvalue().rstrip("\n")


@pass_environment
def capped_tojson(environment: Environment, value: Any, indent: int | None = None) -> markupsafe.Markup:
    """Jinja's `tojson` (htmlsafe_json_dumps with the environment's json policies), encoded chunk by chunk."""
    options = dict(environment.policies["json.dumps_kwargs"])
    if indent is not None:
        options["indent"] = _count(indent, "a JSON indent of")
    pieces, total = [], 0
    for piece in json.JSONEncoder(**options).iterencode(value):
        total += len(piece)
        if total > MAX_VALUE:
            raise _refuse(f"tojson would write more than {MAX_VALUE} characters")
        pieces.append(piece)
    text = "".join(pieces)
    escaped = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").replace("'", "\\u0027")
    return markupsafe.Markup(escaped)


# -- str methods ---------------------------------------------------------------------------------------------------
def _m_width(what: str) -> Callable[..., None]:
    def check(sizes: Sizes, owner: str, width: Any = 0, *_: Any) -> None:
        _check_width(sizes, owner, width, what)

    return check


def _m_expandtabs(sizes: Sizes, owner: str, tabsize: Any = 8) -> None:
    _fits(len(owner) + owner.count("\t") * _count(tabsize, "a tab size of"), "expandtabs")


def _m_replace(sizes: Sizes, owner: str, old: Any, new: Any, count: Any = -1) -> None:
    _check_replace(sizes, owner, old, new, count)


STR_METHOD_CHECKS: Final[Mapping[str, Callable[..., None]]] = {
    "center": _m_width("center"),
    "ljust": _m_width("ljust"),
    "rjust": _m_width("rjust"),
    "zfill": _m_width("zfill"),
    "expandtabs": _m_expandtabs,
    "replace": _m_replace,
}


class _BoundedFormatter(SandboxedFormatter):
    """str.format in the sandbox, with each field's width checked and the whole result capped as it grows."""

    def __init__(self, env: BoundedSandbox, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self._bounded = env
        self._written = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        for number in re.findall(r"\d+", format_spec):
            _count(number, "a format width or precision of")
        self._bounded.sizes.measure(value)
        result = super().format_field(value, format_spec)
        self._written += len(result)
        if self._written > MAX_VALUE:
            raise _refuse(f"format would write more than {MAX_VALUE} characters")
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
        """A value the template made: measured (refused if too big) and its new nodes charged."""
        self.budget.charge(1)
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
                raise _refuse(f"the rendered text would be longer than {MAX_VALUE} characters")
            parts.append(piece)
        self.budget.charge(total // CHARS_PER_UNIT + 1)
        return "".join(parts)

    def _range(self, *args: int) -> range:
        try:
            result = range(*args)
            length = len(result)
        except OverflowError:
            raise _refuse("range too large") from None
        _fits(length, "range")
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
        hidden = 1 if _PassArg.from_obj(func) is not None and first not in _PASSED_NAMES else 0

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
                raise _refuse(f"an exponent of {right} makes an integer over {MAX_INT_BITS} bits")
        elif operator == "*":
            for sized, count in ((left, right), (right, left)):
                if isinstance(sized, sequences) and _is_int(count):
                    _fits(self.sizes.size(sized) * max(count, 0), "this repetition")
            if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise _refuse(f"a product of more than {MAX_INT_BITS} bits")
        elif operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
            _fits(self.sizes.size(left) + self.sizes.size(right), "this concatenation")
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
