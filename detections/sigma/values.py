"""What one Sigma value matches, per pySigma value type: one table entry each.

A detection item ``field|modifiers: value`` reaches this module as one pySigma value (the
modifiers already applied by pySigma) and compiles to a test of the list of values the field
holds in the event (:func:`~auditstream.detections.sigma.fields.field_values`): an array field
matches when any element matches. Values of a type missing from :data:`VALUE_MATCHERS` (field
references, placeholders, query expressions, timestamp parts) are refused at load, by name.
"""

from __future__ import annotations

import ipaddress
import json
import operator
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

import re2
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaType,
)

from auditstream.detections.errors import DetectionError
from auditstream.detections.sigma.strings import compile_string, fold, is_match_all

ValuesMatcher = Callable[[list[object]], bool]
"""Given every value the field holds (``[]`` when it is missing), does the item match?"""


def _json_text(value: object) -> str | None:
    """The text a string pattern is matched against: a string itself, a number or boolean as
    JSON writes it (``403``, ``true``); ``None`` for null, objects and arrays."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return None


def _present(found: list[object]) -> bool:
    return any(v is not None for v in found)


def _absent(found: list[object]) -> bool:
    return all(v is None for v in found)


def _any_text(test: Callable[[str], bool]) -> ValuesMatcher:
    """Matches when the text of some value (see :func:`_json_text`) passes ``test``."""

    def matches(found: list[object]) -> bool:
        return any(text is not None and test(text) for text in map(_json_text, found))

    return matches


def _string(value: SigmaType) -> ValuesMatcher:
    assert isinstance(value, SigmaString)
    return _present if is_match_all(value) else _any_text(compile_string(value))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: SigmaType) -> ValuesMatcher:
    assert isinstance(value, SigmaNumber)
    wanted = value.number
    text = json.dumps(wanted)
    return lambda found: any(
        (_is_number(v) and v == wanted) or (isinstance(v, str) and v == text) for v in found
    )


def _boolean(value: SigmaType) -> ValuesMatcher:
    assert isinstance(value, SigmaBool)
    wanted = value.boolean
    text = json.dumps(wanted)
    return lambda found: any(v is wanted or (isinstance(v, str) and fold(v) == text) for v in found)


def _null(_value: SigmaType) -> ValuesMatcher:
    return _absent


def _exists(value: SigmaType) -> ValuesMatcher:
    assert isinstance(value, SigmaExists)
    return _present if value.exists else _absent


_RE_FLAGS: Final = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}


_QUIET: Final = re2.Options()
_QUIET.log_errors = False


def _regex(value: SigmaType) -> ValuesMatcher:
    assert isinstance(value, SigmaRegularExpression)
    source = value.regexp.to_plain_regex()
    flags = "".join(sorted(_RE_FLAGS[f] for f in value.flags))
    try:
        pattern = re2.compile((f"(?{flags})" if flags else "") + source, _QUIET)
    except re2.error as err:
        raise DetectionError(
            f"regular expression {source!r} is refused by the linear-time engine (RE2): {err}"
        ) from err
    return _any_text(lambda text: pattern.search(text) is not None)


def _cidr(value: SigmaType) -> ValuesMatcher:
    assert isinstance(value, SigmaCIDRExpression)
    network = value.network

    def inside(text: str) -> bool:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return False
        return address.version == network.version and address in network

    return lambda found: any(isinstance(v, str) and inside(v) for v in found)


_COMPARE: Final[Mapping[CompareOperators, Callable[[Any, Any], bool]]] = MappingProxyType(
    {
        CompareOperators.LT: operator.lt,
        CompareOperators.LTE: operator.le,
        CompareOperators.GT: operator.gt,
        CompareOperators.GTE: operator.ge,
        CompareOperators.NEQ: operator.ne,
    }
)


def _compare(value: SigmaType) -> ValuesMatcher:
    assert isinstance(value, SigmaCompareExpression)
    compare = _COMPARE[value.op]
    bound = value.number.number
    return lambda found: any(
        isinstance(v, int | float) and not isinstance(v, bool) and compare(v, bound) for v in found
    )


def _expansion(value: SigmaType) -> ValuesMatcher:
    assert isinstance(value, SigmaExpansion)
    alternatives = [compile_value(v) for v in value.values]
    return lambda found: any(alternative(found) for alternative in alternatives)


VALUE_MATCHERS: Final[Mapping[type[SigmaType], Callable[[SigmaType], ValuesMatcher]]] = (
    MappingProxyType(
        {
            SigmaString: _string,
            SigmaNumber: _number,
            SigmaBool: _boolean,
            SigmaNull: _null,
            SigmaExists: _exists,
            SigmaRegularExpression: _regex,
            SigmaCIDRExpression: _cidr,
            SigmaCompareExpression: _compare,
            SigmaExpansion: _expansion,
        }
    )
)
"""Per pySigma value type (a subclass such as ``SigmaCasedString`` uses its base's entry)."""


REFUSED: Final[Mapping[str, str]] = MappingProxyType(
    {
        "SigmaFieldReference": "the fieldref modifier (comparing two fields of the event)",
        "SigmaQueryExpression": "a placeholder expanded to a target-language query",
        "SigmaTimestampPart": "a timestamp-part modifier (minute, hour, day, ...)",
    }
)
"""Value types pySigma produces that have no meaning on one event without a backend's help."""


def compile_value(value: SigmaType) -> ValuesMatcher:
    """The matcher of one value; raises DetectionError for a type auditstream cannot run."""
    refused = REFUSED.get(type(value).__name__)
    if refused is not None:
        raise DetectionError(f"{refused} is not supported")
    if isinstance(value, SigmaString) and any(isinstance(p, Placeholder) for p in value.s):
        raise DetectionError("placeholders (the expand modifier) are not supported")
    for kind in type(value).__mro__:
        build = VALUE_MATCHERS.get(kind)
        if build is not None:
            return build(value)
    raise DetectionError(f"a {type(value).__name__} value is not supported")
