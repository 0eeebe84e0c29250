"""How Elasticsearch indexes a value, per field type: what a query on the indexed document sees.

Keyword fields take a JSON boolean or number as its text and skip strings over ``ignore_above``;
boolean fields take true/false/"true"/"false"/""; numeric fields take numeric strings and
truncate decimals (``coerce: true``); ip fields take address strings; date fields take the
formats of ``strict_date_optional_time||epoch_millis``; text fields hold the standard
analyzer's terms. A value a mapper cannot take is dropped (``index.mapping.ignore_malformed``,
set by ``logs@settings``). The KQL compiler reads fields through these; see
``docs/kql-semantics.md`` for the evidence of each rule.
"""

from __future__ import annotations

import calendar
import ipaddress
import math
import struct
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Final

import re2

from auditstream.detections.memo import memo
from auditstream.detections.values import Scalar

Key = str | int | float | bool | tuple[int, int]
"""One indexed value as a query compares it (an ip is a 128-bit integer pair)."""

_FLOAT_FORMAT: Final[Mapping[str, str]] = MappingProxyType({"float": "f", "half_float": "e"})


def round_float(value: float, mapped: str) -> float:
    fmt = _FLOAT_FORMAT.get(mapped)
    if fmt is None:
        return value
    try:
        return float(struct.unpack(fmt, struct.pack(fmt, value))[0])
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


# --- how Elasticsearch indexes a value -----------------------------------------------------------
# Coercions follow the field mappers: keyword takes a JSON boolean or number as its text; boolean
# takes true/false/"true"/"false"/"" ("" is false); numbers take numeric strings and truncate
# decimals (coerce: true); ip takes address strings. A value a mapper cannot take is dropped, as
# index.mapping.ignore_malformed (logs@settings) does; see docs/kql-semantics.md.

_IGNORE_ABOVE = 1024  # Fleet's default for keyword fields (ECS dynamic strings too)
_INTEGER_BOUNDS: Final[Mapping[str, int]] = MappingProxyType(
    {"long": 2**63, "integer": 2**31, "short": 2**15, "byte": 2**7}
)
_DATE = re2.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?)?)?)?"
)
_EPOCH = re2.compile(r"-?\d+(?:\.\d+)?")
_MAX_TOKEN = 255  # the standard tokenizer's max_token_length


def keyword_text(value: Scalar) -> str:
    """A value as a keyword field indexes it (JSON ``true`` -> ``"true"``, ``42`` -> ``"42"``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def keywords(values: tuple[Scalar, ...], *, ignore_above: bool) -> tuple[str, ...]:
    texts = tuple(keyword_text(v) for v in values)
    if not ignore_above:
        return texts
    # ignore_above counts UTF-16 code units (Java String.length()).
    return tuple(t for t in texts if len(t) <= _IGNORE_ABOVE // 2 or _utf16_len(t) <= _IGNORE_ABOVE)


def _utf16_len(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def ip_key(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    """Elasticsearch stores every address as 16 bytes: IPv4 as IPv4-mapped IPv6."""
    if isinstance(address, ipaddress.IPv4Address):
        return 0xFFFF00000000 | int(address)
    return int(address)


def ips(values: tuple[Scalar, ...]) -> tuple[int, ...]:
    out: list[int] = []
    for value in values:
        if isinstance(value, str) and "%" not in value:
            try:
                out.append(ip_key(ipaddress.ip_address(value)))
            except ValueError:
                continue
    return tuple(out)


def _booleans(values: tuple[Scalar, ...]) -> tuple[bool, ...]:
    out: list[bool] = []
    for value in values:
        if isinstance(value, bool):
            out.append(value)
        elif value in ("true", "false", ""):
            out.append(value == "true")
    return tuple(out)


def parse_number(text: str) -> Decimal | None:
    if not text or text != text.strip():
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _numbers(values: tuple[Scalar, ...], mapped: str) -> tuple[int | float, ...]:
    """Numeric values of a number field; integer types truncate toward zero (coerce)."""
    bound = _INTEGER_BOUNDS.get(mapped)
    out: list[int | float] = []
    for value in values:
        if isinstance(value, bool):
            continue
        number: Decimal | float | int | None = (
            parse_number(value) if isinstance(value, str) else value
        )
        if number is None or (isinstance(number, float) and not math.isfinite(number)):
            continue
        if bound is None:
            out.append(float(number))
        elif -bound <= int(number) < bound:
            out.append(int(number))
    return tuple(out)


def parse_date(text: str, *, round_up: bool) -> int | None:
    """Epoch milliseconds of ``strict_date_optional_time||epoch_millis``; with ``round_up``,
    missing fields are filled with their maximum (how ``lte``/``gt`` bounds are parsed)."""
    found = _DATE.fullmatch(text)
    if found is None:
        epoch = _EPOCH.fullmatch(text)
        return None if epoch is None else int(Decimal(text))
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    try:
        moment = datetime(
            int(year),
            int(month or (12 if round_up else 1)),
            int(day or 1),
            int(hour or (23 if round_up else 0)),
            int(minute or (59 if round_up else 0)),
            int(second or (59 if round_up else 0)),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    if day is None and round_up:
        moment = moment.replace(day=calendar.monthrange(moment.year, moment.month)[1])
    millis = int((fraction or "").ljust(3, "0")[:3]) if fraction else (999 if round_up else 0)
    offset = 0
    if zone and zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 60 + int(digits[2:4] or 0)
        offset = -offset if zone[0] == "-" else offset
    return int((moment - EPOCH_START).total_seconds()) * 1000 + millis - offset * 60_000


EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)


def dates(values: tuple[Scalar, ...]) -> tuple[int, ...]:
    out: list[int] = []
    for value in values:
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            if math.isfinite(value) and abs(value) < 2**62:
                out.append(int(value))
            continue
        parsed = parse_date(value, round_up=False)
        if parsed is not None:
            out.append(parsed)
    return tuple(out)


# --- the standard analyzer ---------------------------------------------------------------------
# Lucene's StandardTokenizer implements the word boundaries of Unicode UAX #29; this is the
# subset that matters for audit data (see docs/kql-semantics.md): letters, digits and
# connector punctuation join; MidLetter (":" "·") joins two letters, MidNum ("," ";") two
# digits, MidNumLet ("." "'") either; marks stay on their base; ideographs and hiragana are one
# token each; everything else separates. Tokens are cut every 255 characters and lower-cased.

_OTHER, _LETTER, _DIGIT, _JOINER, _MIDLETTER, _MIDNUM, _MIDNUMLET, _EXTEND, _SINGLE = range(9)
_MIDS: Final[Mapping[str, int]] = MappingProxyType(
    dict.fromkeys(":\u00b7\u0387\u05f4\u2027\ufe13\ufe55\uff1a", _MIDLETTER)
    | dict.fromkeys(",;\u037e\u0589\u060c\u060d\u066c\u07f8\u2044\ufe10\ufe14\ufe50\ufe54", _MIDNUM)
    | dict.fromkeys("\uff0c\uff1b", _MIDNUM)
    | dict.fromkeys(".'\u2018\u2019\u2024\ufe52\uff07\uff0e", _MIDNUMLET)
)


def _word_class(ch: str) -> int:
    if ch.isascii():
        if ch.isalpha():
            return _LETTER
        if ch.isdigit():
            return _DIGIT
        return _JOINER if ch == "_" else _MIDS.get(ch, _OTHER)
    mid = _MIDS.get(ch)
    if mid is not None:
        return mid
    cp = ord(ch)
    if 0x3040 <= cp <= 0x309F or 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF:
        return _SINGLE
    if 0xF900 <= cp <= 0xFAFF or 0x20000 <= cp <= 0x3134F:
        return _SINGLE
    category = unicodedata.category(ch)
    if category in ("Mn", "Me", "Mc", "Cf"):
        return _EXTEND
    if category == "Nd":
        return _DIGIT
    if category == "Pc":
        return _JOINER
    return _LETTER if category[0] == "L" or category == "Nl" else _OTHER


def _lower_char(ch: str) -> str:
    """Java ``Character.toLowerCase``: one code point to one code point."""
    if ch == "\u0130":
        return "i"
    low = ch.lower()
    return low if len(low) == 1 else ch


def lowercase(text: str) -> str:
    return "".join(_lower_char(ch) for ch in text)


@memo
def tokenize(text: str) -> tuple[str, ...]:
    """The standard analyzer's terms for ``text`` (linear time; memoised, bounded: group and
    image names repeat across events)."""
    classes = [_word_class(ch) for ch in text]
    tokens: list[str] = []
    start = i = 0
    last = _OTHER  # class of the last letter/digit/joiner in the current word
    core = False  # the current word has a letter or digit
    n = len(text)

    def flush(end: int) -> None:
        if core and end > start:
            word = lowercase(text[start:end])
            tokens.extend(word[k : k + _MAX_TOKEN] for k in range(0, len(word), _MAX_TOKEN))

    while i < n:
        cls = classes[i]
        in_word = i > start
        if cls == _EXTEND and in_word:
            i += 1
            continue
        if cls in (_LETTER, _DIGIT, _JOINER):
            if not in_word:
                start, core = i, False
            core = core or cls != _JOINER
            last = cls
            i += 1
            continue
        if cls in (_MIDLETTER, _MIDNUM, _MIDNUMLET) and in_word and last in (_LETTER, _DIGIT):
            j = i + 1
            while j < n and classes[j] == _EXTEND:
                j += 1
            nxt = classes[j] if j < n else _OTHER
            if (last == nxt == _LETTER and cls != _MIDNUM) or (
                last == nxt == _DIGIT and cls != _MIDLETTER
            ):
                i = j
                continue
        flush(i)
        if cls == _SINGLE:
            tokens.append(text[i])
        i += 1
        start, core, last = i, False, _OTHER
    flush(n)
    return tuple(tokens)


def tokens_of(values: tuple[Scalar, ...]) -> Iterator[tuple[str, ...]]:
    """The terms of each value; values are separate (position_increment_gap keeps phrases
    from spanning two array elements)."""
    for value in values:
        yield tokenize(keyword_text(value))


def contains_run(tokens: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    """``wanted`` at consecutive positions in ``tokens`` (a match_phrase with slop 0)."""
    size = len(wanted)
    first = wanted[0]
    return any(
        tokens[k] == first and tokens[k : k + size] == wanted for k in range(len(tokens) - size + 1)
    )


# --- what each kind indexes ----------------------------------------------------------------------


def _floats(values: tuple[Scalar, ...], mapped: str) -> tuple[Key, ...]:
    return tuple(round_float(float(v), mapped) for v in _numbers(values, mapped))


INDEXERS: Final[Mapping[str, Callable[[tuple[Scalar, ...], str], tuple[Key, ...]]]] = (
    MappingProxyType(
        {
            "keyword": lambda values, _m: keywords(values, ignore_above=True),
            "constant": lambda values, _m: keywords(values, ignore_above=False),
            "flattened": lambda values, _m: keywords(values, ignore_above=False),
            "text": lambda values, _m: tuple(keyword_text(v) for v in values),
            "ip": lambda values, _m: ips(values),
            "boolean": lambda values, _m: _booleans(values),
            "integer": _numbers,
            "float": _floats,
            "date": lambda values, _m: dates(values),
        }
    )
)
