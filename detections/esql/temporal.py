"""ES|QL time spans (``9 minutes``, ``1 day``) and the date arithmetic and truncation over them.

Elasticsearch parses ``<integer> <unit>`` into a ``TIME_DURATION`` (milliseconds to hours) or a
``DATE_PERIOD`` (days to years; ``EsqlDataTypeConverter.INTERVALS``, units case-insensitive).
auditstream runs on UTC, as ES|QL does unless a request sets ``time_zone`` (Kibana's detection
rules do not), so a day is 24 hours and a week 7 days. Months, quarters and years have no fixed
length: they are refused at load rather than approximated.

A date is the text of an ES|QL date per event (the document's ``@timestamp``, what
``DATE_TRUNC`` returns) and epoch milliseconds after ``STATS`` (where the window computes with
them); :func:`shift` and :func:`truncate_value` take either and answer in the same form.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.esql import ast
from auditstream.detections.stateful.event_time import format_time_ms, parse_time_ms
from auditstream.detections.values import Value

_SECOND: Final = 1_000
_MINUTE: Final = 60 * _SECOND
_HOUR: Final = 60 * _MINUTE
_DAY: Final = 24 * _HOUR
_WEEK: Final = 7 * _DAY

UNIT_MS: Final[Mapping[str, int]] = MappingProxyType(
    {
        **dict.fromkeys(("MILLISECOND", "MILLISECONDS", "MS"), 1),
        **dict.fromkeys(("SECOND", "SECONDS", "SEC", "S"), _SECOND),
        **dict.fromkeys(("MINUTE", "MINUTES", "MIN"), _MINUTE),
        **dict.fromkeys(("HOUR", "HOURS", "H"), _HOUR),
        **dict.fromkeys(("DAY", "DAYS", "D"), _DAY),
        **dict.fromkeys(("WEEK", "WEEKS", "W"), _WEEK),
    }
)
"""The units with a fixed length in UTC, in milliseconds."""
CALENDAR_UNITS: Final = frozenset(
    ("MONTH", "MONTHS", "MO", "QUARTER", "QUARTERS", "Q", "YEAR", "YEARS", "YR", "Y")
)
UNITS: Final = frozenset(UNIT_MS) | CALENDAR_UNITS
"""Every unit ES|QL accepts after an integer (``EsqlDataTypeConverter.INTERVALS``)."""
_PERIOD_UNITS: Final = frozenset(("DAY", "DAYS", "D", "WEEK", "WEEKS", "W"))


def span_ms(span: ast.TimeSpan) -> int:
    """The span's length; raises QuerySyntaxError (at the span) for calendar units."""
    per_unit = UNIT_MS.get(span.unit)
    if per_unit is None:
        raise QuerySyntaxError(
            f"time span {span.amount} {span.unit.lower()} is not supported: months, quarters "
            "and years have no fixed length",
            span.pos.line,
            span.pos.column,
        )
    return span.amount * per_unit


def shift(value: Value, delta_ms: int) -> Value:
    """A date moved by ``delta_ms``: epoch millis stay millis, a date's text stays text."""
    if isinstance(value, bool) or value is None or isinstance(value, tuple | float):
        return None
    if isinstance(value, int):
        return value + delta_ms
    millis = parse_time_ms(value)
    return None if millis is None else format_time_ms(millis + delta_ms)


def truncator(span: ast.TimeSpan) -> int:
    """The rounding ``DATE_TRUNC(span, ...)`` uses, as an interval in ms; ``-7`` marks a week.

    ``DateTrunc.createRounding``: a duration rounds down to a multiple of itself since the
    epoch; a period of 1 day to the day; of exactly 7 days (``1 week``) to Monday 00:00
    (``WEEK_OF_WEEKYEAR``); of n > 1 days to a multiple of n days since the epoch.
    """
    length = span_ms(span)
    if length <= 0:
        raise QuerySyntaxError(
            "Zero or negative time interval is not supported", span.pos.line, span.pos.column
        )
    if span.unit in _PERIOD_UNITS and length == _WEEK:
        return -7
    return length


def truncate_ms(millis: int, interval: int) -> int:
    if interval == -7:
        day = millis // _DAY
        weekday = datetime.fromtimestamp(day * 86_400, UTC).weekday()  # Monday is 0
        return (day - weekday) * _DAY
    return millis // interval * interval


def truncate_value(value: Value, interval: int) -> Value:
    """``DATE_TRUNC`` on one value: millis in, millis out; a date's text in, text out."""
    if isinstance(value, bool) or value is None or isinstance(value, tuple | float):
        return None
    if isinstance(value, int):
        return truncate_ms(value, interval)
    millis = parse_time_ms(value)
    return None if millis is None else format_time_ms(truncate_ms(millis, interval))
