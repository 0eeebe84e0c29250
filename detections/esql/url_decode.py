"""ES|QL ``URL_DECODE(s)``: ``java.net.URLDecoder.decode(s, StandardCharsets.UTF_8)``.

Elasticsearch's ``UrlDecode`` (x-pack esql, ``scalar/convert/UrlDecode.java``) calls exactly that
and declares ``warnExceptions = IllegalArgumentException``, so every decoder error becomes null.
The JDK 21+ decoder (Elasticsearch bundles 21 or later) works like this:

* ``+`` becomes a space; every other character passes through unchanged;
* each maximal run of ``%XY`` escapes becomes bytes, decoded with ``new String(bytes, UTF_8)``,
  whose malformed-input replacement (one U+FFFD per maximal invalid subsequence) is the same as
  Python's ``errors="replace"``;
* each ``%`` must be followed by two ASCII hex digits (``HexFormat.fromHexDigits``; JDK 17's
  ``Integer.parseInt`` also took ``+``/``-`` and non-ASCII digits, JDK 21 does not): an
  incomplete or non-hex escape throws, so the whole result is null.
"""

from __future__ import annotations

import re

_ESCAPE_RUN_OR_PLUS = re.compile(r"(?:%[0-9A-Fa-f]{2})+|\+")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def java_url_decode(s: str) -> str | None:
    """Decodes like Java's URLDecoder with UTF-8; None where Java throws."""
    if "%" not in s:
        return s.replace("+", " ") if "+" in s else s
    if _BAD_ESCAPE.search(s) is not None:
        return None
    return _ESCAPE_RUN_OR_PLUS.sub(_decode_token, s)


def _decode_token(match: re.Match[str]) -> str:
    token = match.group()
    if token == "+":
        return " "
    return bytes.fromhex(token.replace("%", "")).decode("utf-8", "replace")
