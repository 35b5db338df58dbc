"""The template sandbox's limits: the work budget, the measure of values, and the checks of what would grow.

sandbox.py wires these into Jinja2; they are kept apart so each rule (a width, a `%` format, a `replace`) can be
read, and tested, on its own. Every refusal is a SandboxLimitError.
"""

from __future__ import annotations

import inspect
import io
import json
import pprint
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import markupsafe
from jinja2.environment import Environment
from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace, pass_environment

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
PASSED_NAMES = frozenset({"context", "eval_ctx", "environment", "env"})


class SandboxLimitError(SecurityError):
    """A template would make too big a value or do too much work."""


def refuse(message: str) -> SandboxLimitError:
    return SandboxLimitError(message)


class Budget:
    """Work units spent by one manifest's render."""

    def __init__(self, limit: int = MAX_WORK) -> None:
        self.limit = limit
        self.spent = 0

    def charge(self, units: int) -> None:
        self.spent += units
        if self.spent > self.limit:
            raise refuse(
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
                raise refuse(f"a string of {len(value)} characters (the sandbox allows {MAX_VALUE})")
            return len(value), len(value) // CHARS_PER_UNIT + 1
        if isinstance(value, bool) or value is None:
            return 5, 1
        if isinstance(value, int):
            if value.bit_length() > MAX_INT_BITS:
                raise refuse(f"an integer of {value.bit_length()} bits (the sandbox allows {MAX_INT_BITS})")
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
                    raise refuse(f"a value of more than {MAX_VALUE} characters or items")
            self.budget.charge(len(value) if not isinstance(value, Namespace) else 1)
        if size > MAX_VALUE:
            raise refuse(f"a value of more than {MAX_VALUE} characters or items")
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


def bounded_count(value: Any, what: str) -> int:
    """A width or count argument: an int (or int-like) no bigger than MAX_VALUE."""
    number = int(value)
    if number > MAX_VALUE:
        raise refuse(f"{what} {number} is too large (the sandbox allows {MAX_VALUE})")
    return number


def fits(predicted: int, what: str) -> None:
    if predicted > MAX_VALUE:
        raise refuse(f"{what} would make a value of {predicted} characters or items (the sandbox allows {MAX_VALUE})")


def check_percent(sizes: Sizes, fmt: str, args: Any) -> None:
    """`fmt % args`: widths and precisions, then the largest text the conversions could write."""
    predicted = len(fmt) + 4 * sizes.size(args)
    for match in _PERCENT.finditer(fmt):
        width, precision, conversion = match.groups()
        if "*" in (width, precision):
            raise refuse("a `*` width or precision in %-formatting")
        predicted += bounded_count(width or 0, "a width of") + bounded_count(precision or 0, "a precision of")
        predicted += 320 if conversion in _FLOATS else 0  # '%f' % 1e308 writes 309 digits
    fits(predicted, "this %-formatting")


def _check_replace(sizes: Sizes, s: Any, old: Any, new: Any, count: Any = None) -> None:
    text, old_text, new_text = str(s), str(old), str(new)
    occurrences = text.count(old_text) if old_text else len(text) + 1
    if count is not None and int(count) >= 0:
        occurrences = min(occurrences, int(count))
    fits(len(text) + occurrences * max(0, len(new_text) - len(old_text)), "replace")


def _check_join(sizes: Sizes, separator: str, items: list[Any]) -> None:
    fits(sum(sizes.size(i) for i in items) + len(separator) * len(items), "join")


def _check_width(sizes: Sizes, s: Any, width: Any, what: str) -> None:
    fits(max(sizes.size(s), bounded_count(width, f"{what} width")), what)


# -- filters -------------------------------------------------------------------------------------------------------
FilterCheck = Callable[[Sizes, inspect.BoundArguments], None]


def _f_center(sizes: Sizes, bound: inspect.BoundArguments) -> None:
    _check_width(sizes, bound.arguments["value"], bound.arguments.get("width", 80), "center")


def _f_indent(sizes: Sizes, bound: inspect.BoundArguments) -> None:
    text = str(bound.arguments["s"])
    width = bound.arguments.get("width", 4)
    per_line = len(width) if isinstance(width, str) else bounded_count(width, "an indent of")
    fits(len(text) + (text.count("\n") + 1) * per_line, "indent")


def _f_format(sizes: Sizes, bound: inspect.BoundArguments) -> None:
    check_percent(sizes, str(bound.arguments["value"]), bound.arguments.get("kwargs") or bound.arguments.get("args"))


def _f_replace(sizes: Sizes, bound: inspect.BoundArguments) -> None:
    a = bound.arguments
    _check_replace(sizes, a["s"], a["old"], a["new"], a.get("count"))


def _f_batch(sizes: Sizes, bound: inspect.BoundArguments) -> None:
    bounded_count(bound.arguments["linecount"], "a batch of")


def _f_slice(sizes: Sizes, bound: inspect.BoundArguments) -> None:
    bounded_count(bound.arguments["slices"], "a slice count of")


def _f_wordwrap(sizes: Sizes, bound: inspect.BoundArguments) -> None:
    a = bound.arguments
    text = str(a["s"])
    wrap = a.get("wrapstring") or "\n"
    lines = len(text.split()) + len(text) // max(1, int(a.get("width", 79))) + 1
    fits(len(text) + lines * len(str(wrap)), "wordwrap")


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
        fits(total, "sum")
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
            raise refuse(f"pprint would write more than {MAX_VALUE} characters")
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
        options["indent"] = bounded_count(indent, "a JSON indent of")
    pieces, total = [], 0
    for piece in json.JSONEncoder(**options).iterencode(value):
        total += len(piece)
        if total > MAX_VALUE:
            raise refuse(f"tojson would write more than {MAX_VALUE} characters")
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
    fits(len(owner) + owner.count("\t") * bounded_count(tabsize, "a tab size of"), "expandtabs")


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
