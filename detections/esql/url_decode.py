"""ES|QL ``URL_DECODE(s)``: ``java.net.URLDecoder.decode(s, StandardCharsets.UTF_8)``.

Elasticsearch's ``UrlDecode`` (x-pack esql, ``scalar/convert/UrlDecode.java``) calls exactly that
and declares ``warnExceptions = IllegalArgumentException``, so every decoder error becomes null.
The JDK 21+ decoder (Elasticsearch bundles 21 or later) works like this:

* ``+`` becomes a space; every other character passes through unchanged;
* each maximal run of ``%XY`` escapes becomes bytes, decoded with ``new String(bytes, UTF_8)``;
  its malformed-input replacement is *not* Python's ``errors="replace"`` (an encoded surrogate
  ``ED A0 80`` is one U+FFFD, a truncated sequence at the end is one U+FFFD for all its bytes),
  so :func:`java_utf8_decode` replays ``String.decodeUTF8_UTF16`` byte by byte;
* each ``%`` must be followed by two ASCII hex digits (``HexFormat.fromHexDigits``; JDK 17's
  ``Integer.parseInt`` also took ``+``/``-`` and non-ASCII digits, JDK 21 does not): an
  incomplete or non-hex escape throws, so the whole result is null.
"""

from __future__ import annotations

import re

_ESCAPE_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def java_url_decode(s: str) -> str | None:
    """Decodes like Java's URLDecoder with UTF-8; None where Java throws."""
    if "%" not in s:
        return s.replace("+", " ") if "+" in s else s
    if _BAD_ESCAPE.search(s) is not None:
        return None
    # "+" -> " " first is safe: escapes decode afterwards, so an escaped "%2B" stays a "+"
    return _ESCAPE_RUN.sub(_decode_run, s.replace("+", " ") if "+" in s else s)


def _decode_run(match: re.Match[str]) -> str:
    return java_utf8_decode(bytes.fromhex(match.group().replace("%", "")))


def java_utf8_decode(data: bytes) -> str:
    """``new String(data, UTF_8)``: well-formed input as usual, malformed input as Java does."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        b1 = data[i]
        i += 1
        if b1 < 0x80:
            out.append(chr(b1))
        elif 0xC2 <= b1 <= 0xDF:
            i = _two(data, i, b1, out)
        elif 0xE0 <= b1 <= 0xEF:
            i = _three(data, i, b1, out)
        elif 0xF0 <= b1 <= 0xF7:
            i = _four(data, i, b1, out)
        else:
            out.append(_REPL)
    return "".join(out)


_REPL = "\ufffd"
_END = 1 << 62  # "break": the decoder stops, dropping a truncated tail


def _cont(b: int) -> bool:
    return b & 0xC0 == 0x80


def _two(data: bytes, i: int, b1: int, out: list[str]) -> int:
    if i >= len(data):
        out.append(_REPL)
        return _END
    if not _cont(data[i]):
        out.append(_REPL)
        return i
    out.append(chr(((b1 & 0x1F) << 6) | (data[i] & 0x3F)))
    return i + 1


def _three(data: bytes, i: int, b1: int, out: list[str]) -> int:
    n = len(data)
    if i + 1 < n:
        b2, b3 = data[i], data[i + 1]
        if (b1 == 0xE0 and b2 & 0xE0 == 0x80) or not _cont(b2) or not _cont(b3):
            out.append(_REPL)
            return i + (0 if (b1 == 0xE0 and b2 & 0xE0 == 0x80) or not _cont(b2) else 1)
        cp = ((b1 & 0x0F) << 12) | ((b2 & 0x3F) << 6) | (b3 & 0x3F)
        out.append(_REPL if 0xD800 <= cp <= 0xDFFF else chr(cp))
        return i + 2
    out.append(_REPL)
    if i < n and ((b1 == 0xE0 and data[i] & 0xE0 == 0x80) or not _cont(data[i])):
        return i
    return _END


def _four(data: bytes, i: int, b1: int, out: list[str]) -> int:
    n = len(data)
    if i + 2 < n:
        b2, b3, b4 = data[i], data[i + 1], data[i + 2]
        cp = ((b1 & 0x07) << 18) | ((b2 & 0x3F) << 12) | ((b3 & 0x3F) << 6) | (b4 & 0x3F)
        if _cont(b2) and _cont(b3) and _cont(b4) and 0x10000 <= cp <= 0x10FFFF:
            out.append(chr(cp))
            return i + 3
        out.append(_REPL)
        if b1 > 0xF4 or _bad_second(b1, b2):
            return i
        return i + (1 if not _cont(b3) else 2)
    out.append(_REPL)
    if b1 > 0xF4 or (i < n and _bad_second(b1, data[i])):
        return i
    i += 1
    if i < n and not _cont(data[i]):
        return i
    return _END


def _bad_second(b1: int, b2: int) -> bool:
    return (
        (b1 == 0xF0 and not 0x90 <= b2 <= 0xBF)
        or (b1 == 0xF4 and b2 & 0xF0 != 0x80)
        or not _cont(b2)
    )
