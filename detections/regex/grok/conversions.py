"""Grok's ``%{NAME:field:type}`` conversions, exactly as the Java parsers Elasticsearch calls.

``GrokCaptureType`` maps ``int``/``long``/``float``/``double``/``boolean`` to
``Integer.parseInt``, ``Long.parseLong``, ``Float.parseFloat``, ``Double.parseDouble`` and
``Boolean.parseBoolean``; anything else is a string. ES|QL widens float to double
(``GrokEvaluatorExtracter``), so a float column holds the float32 value as a double. A text
that Java cannot parse throws ``NumberFormatException``, which ES|QL does not catch: the query
fails; we raise :class:`GrokConversionError` for the caller to do the same.
"""

from __future__ import annotations

import math
import re
import struct
import unicodedata
from collections.abc import Callable
from fractions import Fraction

from auditstream.detections.errors import DetectionError
from auditstream.detections.values import Scalar

COLUMN_TYPES = {
    "int": "integer",
    "long": "long",
    "float": "double",
    "double": "double",
    "boolean": "boolean",
}
_INT_RANGE = {"int": 31, "long": 63}
_DECIMAL = re.compile(
    r"[+-]?(?:NaN|Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?)"
)
_HEX = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?|[0-9a-fA-F]*\.[0-9a-fA-F]+)[pP][+-]?[0-9]+[fFdD]?")
_FLT_MAX = float.fromhex("0x1.fffffep127")


class GrokConversionError(DetectionError):
    """A typed grok capture Java cannot parse (NumberFormatException): ES|QL fails the query."""


def converter(suffix: str) -> Callable[[str], Scalar]:
    """The parse function for a ``:type`` suffix (unknown suffixes keep the text)."""
    if suffix in _INT_RANGE:
        bits = _INT_RANGE[suffix]
        return lambda text: _parse_integer(text, bits)
    if suffix == "float":
        return lambda text: _to_float32(_java_float_text(text))
    if suffix == "double":
        return lambda text: _text_to_double(_java_float_text(text))
    if suffix == "boolean":
        return lambda text: text.lower() == "true"
    return lambda text: text


def _parse_integer(text: str, bits: int) -> int:
    """Integer.parseInt/Long.parseLong: sign, then BMP decimal digits of any script."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or any(ord(c) > 0xFFFF or unicodedata.decimal(c, None) is None for c in body):
        raise GrokConversionError(f'For input string: "{text}"')
    value = int("".join(str(unicodedata.decimal(c)) for c in body))
    value = -value if text[0] == "-" else value
    if not -(1 << bits) <= value < (1 << bits):
        raise GrokConversionError(f'For input string: "{text}"')
    return value


def _java_float_text(text: str) -> str:
    """The text FloatingDecimal accepts (trimmed of chars <= U+0020), without its d/f suffix."""
    trimmed = text.strip("".join(chr(c) for c in range(0x21)))
    if _DECIMAL.fullmatch(trimmed) is None and _HEX.fullmatch(trimmed) is None:
        raise GrokConversionError(f'For input string: "{text}"')
    return trimmed[:-1] if trimmed[-1] in "fFdD" and "nity" not in trimmed[-4:] else trimmed


def _text_to_double(text: str) -> float:
    if "x" in text or "X" in text:
        return float.fromhex(text)
    return float(text.replace("Infinity", "inf"))


def _to_float32(text: str) -> float:
    """Correctly rounded decimal -> binary32 (no double rounding), widened to a Python float."""
    value = _text_to_double(text)
    if math.isnan(value) or math.isinf(value) or value == 0.0 or "x" in text or "X" in text:
        return _round32(value)
    exact = Fraction(text)
    candidate = _round32(value)
    best = candidate
    for neighbour in (_next32(candidate, -math.inf), _next32(candidate, math.inf)):
        if math.isinf(neighbour):
            continue
        gap = abs(Fraction(neighbour) - exact) - abs(Fraction(best) - exact)
        if gap < 0 or (gap == 0 and _even32(neighbour)):
            best = neighbour
    if abs(exact) >= Fraction(_FLT_MAX) + Fraction(2**103):  # FLT_MAX + half an ulp (2**104)
        return math.copysign(math.inf, value)
    return best


def _round32(value: float) -> float:
    if abs(value) > _FLT_MAX:
        return math.copysign(_FLT_MAX, value)
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


def _next32(value: float, toward: float) -> float:
    bits: int = struct.unpack("<i", struct.pack("<f", value))[0]
    up = (toward > value) == (value >= 0)
    if value == 0:
        return math.copysign(float.fromhex("0x1p-149"), toward)
    bits = bits + 1 if up else bits - 1
    result: float = struct.unpack("<f", struct.pack("<i", bits))[0]
    return result


def _even32(value: float) -> bool:
    bits: int = struct.unpack("<I", struct.pack("<f", value))[0]
    return bits & 1 == 0
