"""ES|QL scalar functions with Elasticsearch's null and multi-value rules.

Every function here returns null for a null argument unless ES|QL says otherwise (``COALESCE``,
``CASE``, ``MV_*``), and null for a multi-valued argument where ES|QL would warn and null it.
Where Elasticsearch throws at run time (and so yields null with a warning), we return ``None``:
a rule never raises on event data. Constant arguments (regexes, delimiters, CIDR blocks) are
compiled once here, at load.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

from auditstream.detections.elastic.mapping import elastic_document
from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.esql import ast
from auditstream.detections.esql.temporal import truncate_value, truncator
from auditstream.detections.esql.url_decode import java_url_decode
from auditstream.detections.kql import compile_kql
from auditstream.detections.memo import memo
from auditstream.detections.regex.java.pattern import JavaRegex, compile_java_regex
from auditstream.detections.values import Scalar, Value

Row = Any  # opaque to this module: evaluators pass the compiler's Row through
Evaluator = Callable[[Row], Value]

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_JAVA_INT = re.compile(r"[+-]?[0-9]+")
_JAVA_DOUBLE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?")
# Character.isWhitespace over the ASCII range, which is what ES's TRIM tests byte by byte.
_TRIM_CHARS = " \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"


def compile_call(call: ast.Call, args: Sequence[Evaluator]) -> Evaluator:
    """Check arity and constant arguments, and return the function's evaluator."""
    function = FUNCTIONS[call.name]
    low, high = function.min_args, function.max_args
    if len(args) < low or (high is not None and len(args) > high):
        expected = str(low) if low == high else f"{low} to {high or 'any'}"
        raise QuerySyntaxError(
            f"{call.name} takes {expected} arguments, got {len(args)}",
            call.pos.line,
            call.pos.column,
        )
    try:
        return function.build(call, list(args))
    except QuerySyntaxError as err:
        if err.line is not None:
            raise
        raise QuerySyntaxError(err.reason, call.pos.line, call.pos.column) from err


# --- helpers ---------------------------------------------------------------------------------


def _text(value: Value) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _constant(expr: ast.Expr) -> Value:
    return expr.value if isinstance(expr, ast.Literal) else None


def _strings(fn: Callable[..., Value], args: list[Evaluator]) -> Evaluator:
    """Apply ``fn`` when every argument is a single string; null otherwise."""
    if len(args) == 1:
        (only,) = args

        def unary(row: Row) -> Value:
            value = only(row)
            return fn(value) if isinstance(value, str) else None

        return unary

    def nary(row: Row) -> Value:
        values = [arg(row) for arg in args]
        if all(isinstance(v, str) for v in values):
            return fn(*values)
        return None

    return nary


# --- builders --------------------------------------------------------------------------------


def _url_decode(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    return _strings(memo(java_url_decode), args)


def _replace(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    source, pattern_arg, replacement_arg = args
    constant = _constant(call.args[1])
    if isinstance(constant, str):
        replace_all = memo(compile_java_regex(constant).replace_all)

        def fixed(row: Row) -> Value:
            text, replacement = source(row), replacement_arg(row)
            if isinstance(text, str) and isinstance(replacement, str):
                return replace_all(text, replacement)
            return None

        return fixed
    cache: dict[str, JavaRegex | None] = {}

    def dynamic(row: Row) -> Value:
        text, pattern, replacement = source(row), pattern_arg(row), replacement_arg(row)
        if not (
            isinstance(text, str) and isinstance(pattern, str) and isinstance(replacement, str)
        ):
            return None
        if pattern not in cache:
            if len(cache) > 256:
                cache.clear()
            try:
                cache[pattern] = compile_java_regex(pattern)
            except QuerySyntaxError:
                cache[pattern] = None
        regex = cache[pattern]
        return None if regex is None else regex.replace_all(text, replacement)

    return dynamic


def _substring(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    source, start_arg = args[0], args[1]
    length_arg = args[2] if len(args) == 3 else None

    def evaluate(row: Row) -> Value:
        text, start = _text(source(row)), _int(start_arg(row))
        length = _int(length_arg(row)) if length_arg is not None else None
        if text is None or start is None or (length_arg is not None and length is None):
            return None
        if length is not None and length < 0:
            return None
        index = start - 1 if start > 0 else (len(text) + start if start < 0 else 0)
        index = min(max(0, index), len(text))
        end = len(text) if length is None else min(len(text), index + length)
        return text[index:end]

    return evaluate


def _locate(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    source, needle_arg = args[0], args[1]
    start_arg = args[2] if len(args) == 3 else None

    def evaluate(row: Row) -> Value:
        text, needle = _text(source(row)), _text(needle_arg(row))
        start = _int(start_arg(row)) if start_arg is not None else 0
        if text is None or needle is None or start is None:
            return None
        if len(text.encode()) < len(needle.encode()):
            return 0
        index = start - 1 if start > 0 else (len(text) + start if start < 0 else 0)
        found = text.find(needle, min(max(0, index), len(text)))
        return found + 1

    return evaluate


def _split(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    source, delimiter_arg = args
    constant = _constant(call.args[1])
    if isinstance(constant, str) and len(constant.encode()) != 1:
        raise QuerySyntaxError("SPLIT supports only a single-byte delimiter")

    def evaluate(row: Row) -> Value:
        text, delimiter = _text(source(row)), _text(delimiter_arg(row))
        if text is None or delimiter is None or len(delimiter.encode()) != 1:
            return None
        parts = text.split(delimiter)
        return parts[0] if len(parts) == 1 else tuple(parts)

    return evaluate


def _case(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
    default = args[-1] if len(args) % 2 == 1 else None

    def evaluate(row: Row) -> Value:
        for condition, value in pairs:
            if condition(row) is True:
                return value(row)
        return default(row) if default is not None else None

    return evaluate


def _coalesce(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    def evaluate(row: Row) -> Value:
        for arg in args:
            value = arg(row)
            if value is not None:
                return value
        return None

    return evaluate


def _mv_count(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    (source,) = args

    def evaluate(row: Row) -> Value:
        value = source(row)
        if value is None:
            return None
        return len(value) if isinstance(value, tuple) else 1

    return evaluate


def _as_set(value: Value) -> set[Scalar]:
    if value is None:
        return set()
    return set(value) if isinstance(value, tuple) else {value}


def _mv_contains(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    superset, subset = args

    def evaluate(row: Row) -> Value:
        return _as_set(subset(row)) <= _as_set(superset(row))

    return evaluate


def _cidr_match(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    source, blocks = args[0], args[1:]
    constants = [_constant(expr) for expr in call.args[1:]]
    if all(isinstance(c, str) for c in constants):
        try:
            networks = [ipaddress.ip_network(str(c), strict=False) for c in constants]
        except ValueError as err:
            raise QuerySyntaxError(f"CIDR_MATCH: {err}") from err

        def fixed(row: Row) -> Value:
            address = _ip(source(row))
            return None if address is None else any(address in n for n in networks)

        return fixed

    def dynamic(row: Row) -> Value:
        address = _ip(source(row))
        if address is None:
            return None
        for block in blocks:
            text = block(row)
            try:
                if isinstance(text, str) and address in ipaddress.ip_network(text, strict=False):
                    return True
            except ValueError:
                continue
        return False

    return dynamic


def _ip(value: Value) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not isinstance(value, str):
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _java_double_text(number: float) -> str:
    """``Double.toString``: plain notation in [1e-3, 1e7), else ``d.dddE±n``, shortest digits."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    magnitude = abs(number)
    if magnitude == 0 or 1e-3 <= magnitude < 1e7:
        text = repr(number)
        return text if "." in text else text + ".0"
    _, digit_tuple, exponent = Decimal(repr(magnitude)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    assert isinstance(exponent, int)
    scientific = len(digits) - 1 + exponent
    sign = "-" if number < 0 else ""
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{scientific}"


def _to_string_one(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double_text(value)
    return str(value)


def _to_string(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    (source,) = args

    def evaluate(row: Row) -> Value:
        value = source(row)
        if value is None:
            return None
        if isinstance(value, tuple):
            return tuple(_to_string_one(v) for v in value)
        return _to_string_one(value)

    return evaluate


def _to_integer_one(value: Scalar) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if _INT_MIN <= value <= _INT_MAX else None
    if isinstance(value, float):
        number: float = value
    else:
        if _JAVA_INT.fullmatch(value):
            parsed = int(value)
            return parsed if _INT_MIN <= parsed <= _INT_MAX else None
        stripped = value.strip("".join(chr(c) for c in range(33)))
        if not _JAVA_DOUBLE.fullmatch(stripped):
            return None
        number = float(stripped.rstrip("fFdD"))
    if math.isnan(number) or math.isinf(number):
        return None
    rounded = math.floor(number + 0.5)  # Math.round
    return rounded if _INT_MIN <= rounded <= _INT_MAX else None


def _to_integer(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    (source,) = args

    def evaluate(row: Row) -> Value:
        value = source(row)
        if value is None:
            return None
        if isinstance(value, tuple):
            converted = tuple(i for i in map(_to_integer_one, value) if i is not None)
            if not converted:
                return None
            return converted[0] if len(converted) == 1 else converted
        return _to_integer_one(value)

    return evaluate


def _length(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    return _strings(len, args)


def _concat(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    return _strings(lambda *parts: "".join(parts), args)


def _kql(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    """``KQL(query)``: a KQL query on the event's indexed document, true or false (never null),
    as Elasticsearch runs it as a Lucene query beside the ES|QL filter."""
    text = _constant(call.args[0])
    if not isinstance(text, str):
        raise QuerySyntaxError("KQL takes a constant string query")
    try:
        query = compile_kql(text)
    except QuerySyntaxError as err:
        raise QuerySyntaxError(f"KQL query: {err}") from err
    return lambda row: query.predicate(elastic_document(row.event))


def _date_trunc(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    """``DATE_TRUNC(span, date)``: the span must be a constant (Elasticsearch folds it at
    planning and refuses anything else); calendar spans are refused (see ``temporal``)."""
    span = call.args[0]
    if not isinstance(span, ast.TimeSpan):
        raise QuerySyntaxError("DATE_TRUNC takes a time span (such as 1 minute) first")
    interval = truncator(span)
    source = args[1]
    return lambda row: truncate_value(source(row), interval)


def _now(call: ast.Call, args: list[Evaluator]) -> Evaluator:
    """``NOW()``: the end of the window a row after ``STATS`` stands for (epoch millis)."""
    return lambda row: row.now_ms


Builder = Callable[[ast.Call, list[Evaluator]], Evaluator]


@dataclass(frozen=True, slots=True)
class Function:
    """One ES|QL scalar function: how many arguments it takes and how a call compiles.

    Adding a function is one entry in :data:`FUNCTIONS` (the parser accepts exactly these
    names), its tests, and its name in ``docs/esql-semantics.md`` (a test ties the three).
    """

    min_args: int
    max_args: int | None  # None: any number
    build: Builder
    reads_document: bool = False
    """Reads the whole indexed document rather than its arguments (``KQL()``): the rule's
    outcome is then a function of the whole event, which the hit memo must know."""
    clock: bool = False
    """Reads the time the row is evaluated at (``NOW()``): compiled only where a row has one,
    after ``STATS`` (per event, the hit memo and replays need a function of the event)."""


FUNCTIONS: Final[Mapping[str, Function]] = MappingProxyType(
    {
        "URL_DECODE": Function(1, 1, _url_decode),
        "REPLACE": Function(3, 3, _replace),
        "TO_LOWER": Function(1, 1, lambda call, args: _strings(str.lower, args)),
        "TO_UPPER": Function(1, 1, lambda call, args: _strings(str.upper, args)),
        "CONCAT": Function(2, None, _concat),
        "LENGTH": Function(1, 1, _length),
        "SUBSTRING": Function(2, 3, _substring),
        "STARTS_WITH": Function(2, 2, lambda call, args: _strings(str.startswith, args)),
        "ENDS_WITH": Function(2, 2, lambda call, args: _strings(str.endswith, args)),
        "LOCATE": Function(2, 3, _locate),
        "TRIM": Function(1, 1, lambda call, args: _strings(lambda s: s.strip(_TRIM_CHARS), args)),
        "SPLIT": Function(2, 2, _split),
        "CASE": Function(2, None, _case),
        "COALESCE": Function(1, None, _coalesce),
        "MV_COUNT": Function(1, 1, _mv_count),
        "MV_CONTAINS": Function(2, 2, _mv_contains),
        "CIDR_MATCH": Function(2, None, _cidr_match),
        "TO_STRING": Function(1, 1, _to_string),
        "TO_INTEGER": Function(1, 1, _to_integer),
        "KQL": Function(1, 1, _kql, reads_document=True),
        "DATE_TRUNC": Function(2, 2, _date_trunc),
        "NOW": Function(0, 0, _now, clock=True),
    }
)
