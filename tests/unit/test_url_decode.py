"""URL_DECODE = Java's URLDecoder.decode(s, UTF_8), null where it throws.

Checked three ways: hand-picked cases (each one a rule of the JDK 21 decoder), a property test
against a straightforward reference written here from the spec, and a differential test against
the real JDK (tests/oracle/jdk, skipped when no JDK 21+ toolchain is present).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.detections.esql.url_decode import java_url_decode
from tests.oracle.jdk.oracle_client import JdkOracle


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("plain", "plain"),
        ("a+b", "a b"),
        ("%2B", "+"),  # an escaped plus stays a plus
        ("%41%42c", "ABc"),
        ("%e2%82%ac", "€"),  # lower-case hex, one 3-byte character
        ("é+%C3%A9", "é é"),  # non-ASCII input passes through
        ("%C3", "\ufffd"),  # truncated sequence: one replacement
        ("%E2%82", "\ufffd"),
        ("%ED%A0%80", "\ufffd"),  # an encoded surrogate: Java replaces all three bytes by one
        ("%ED%A0", "\ufffd"),  # truncated at the end: one replacement, decoding stops
        ("%E0%80%80", "\ufffd" * 3),  # overlong 3-byte: byte by byte
        ("%F0%9F%98", "\ufffd"),
        ("%C0%80", "\ufffd" * 2),  # overlong
        ("%F5%80", "\ufffd" * 2),
        ("%FF", "\ufffd"),
        ("%F0%9F%98%80", "\U0001f600"),
        ("a%0Ab", "a\nb"),
        ("%", None),  # incomplete trailing escape
        ("%4", None),
        ("ab%4", None),
        ("%4g", None),  # non-hex
        ("%+1", None),  # JDK 17's parseInt took a sign; JDK 21's HexFormat does not
        ("%-1", None),
        ("%٣٣", None),  # non-ASCII digits: JDK 21 rejects them
        ("%41%", None),
        ("+%", None),
    ],
)
def test_java_url_decode_cases(text: str, expected: str | None) -> None:
    assert java_url_decode(text) == expected


def test_seed_exec_uri_decodes() -> None:
    encoded = "/api/v1/namespaces/ns/pods/p/exec?command=sh&command=-c&command=cat+%2Fetc%2Fshadow&container=c"
    assert java_url_decode(encoded) == (
        "/api/v1/namespaces/ns/pods/p/exec?command=sh&command=-c&command=cat /etc/shadow&container=c"
    )


def _reference(s: str) -> str | None:
    """Straight from the JDK 21 source's loop structure, written independently."""
    out: list[str] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "+":
            out.append(" ")
            i += 1
        elif c == "%":
            raw = bytearray()
            while i < len(s) and s[i] == "%":
                pair = s[i + 1 : i + 3]
                if len(pair) < 2 or not all(ch in "0123456789abcdefABCDEF" for ch in pair):
                    return None
                raw.append(int(pair, 16))
                i += 3
            out.append(_java_utf8(bytes(raw)))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _java_utf8(raw: bytes) -> str:
    """Independent model of String.decodeUTF8_UTF16's replacement: valid prefixes, else rules."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        for size in (4, 3, 2, 1):
            chunk = raw[i : i + size]
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if len(text) == 1:
                out.append(text)
                i += size
                break
        else:
            consumed, stop = _java_malformed(raw, i)
            out.append("\ufffd")
            if stop:
                break
            i += consumed
    return "".join(out)


def _java_malformed(raw: bytes, i: int) -> tuple[int, bool]:
    """Bytes one malformed sequence at ``i`` takes, and whether decoding stops there."""
    b1, rest = raw[i], raw[i + 1 :]
    need = 2 if 0xC2 <= b1 <= 0xDF else 3 if 0xE0 <= b1 <= 0xEF else 4 if 0xF0 <= b1 <= 0xF7 else 1
    if need == 1:
        return 1, False
    lo = {0xE0: 0xA0, 0xF0: 0x90}.get(b1, 0x80)
    hi = {0xF4: 0x8F}.get(b1, 0xBF)
    good = 0
    for k, b in enumerate(rest[: need - 1]):
        ok = (lo <= b <= hi) if k == 0 and need == 4 else (0x80 <= b <= 0xBF)
        if k == 0 and need == 3 and b1 == 0xE0:
            ok = 0xA0 <= b <= 0xBF
        if not ok or b1 > 0xF4:
            break
        good += 1
    truncated = len(rest) < need - 1 and good == len(rest)
    if need == 3 and good == 2:  # an encoded surrogate: all three bytes, one replacement
        return 3, False
    return 1 + good, truncated


_ALPHABET = st.sampled_from(
    [*"%+&=?/ab\n\r019AFaf", "é", "\u0085", "\u2028", "\U0001f600", "%C3", "%A9", "%E2%82"]
)
_URLISH = st.lists(_ALPHABET, max_size=40).map("".join)


@given(_URLISH)
@settings(max_examples=500)
def test_matches_reference(text: str) -> None:
    assert java_url_decode(text) == _reference(text)


def _escape_bytes(data: bytes) -> str:
    return "".join(f"%{b:02X}" for b in data)


_MIXED = st.lists(
    st.one_of(_ALPHABET, st.binary(min_size=1, max_size=6).map(_escape_bytes)),
    max_size=20,
).map("".join)


@given(_MIXED)
@settings(max_examples=300, deadline=None)
def test_matches_real_jdk(jdk_oracle: JdkOracle, text: str) -> None:
    answer = jdk_oracle.ask("url_decode", text)
    expected = answer[1] if answer[0] == "ok" else None
    assert java_url_decode(text) == expected


@pytest.mark.parametrize(
    ("text", "expected_len"),
    [("%41" * 350_000, 350_000), ("+" * 1_000_000, 1_000_000), ("%E2%82%AC" * 120_000, 120_000)],
)
def test_megabyte_inputs_finish(text: str, expected_len: int) -> None:
    result = java_url_decode(text)
    assert result is not None and len(result) == expected_len


def test_megabyte_malformed_is_null() -> None:
    assert java_url_decode("%" * 1_000_000) is None
    assert java_url_decode("%41" * 333_333 + "%4") is None
