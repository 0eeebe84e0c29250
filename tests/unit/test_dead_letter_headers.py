"""Dead letters keep the original record and say why, where from, in headers."""

from __future__ import annotations

from auditstream.stream.sinks.dead_letters import MAX_DETAIL_BYTES, DeadLetter, cap_detail


def test_headers_keep_originals_then_add_ours() -> None:
    letter = DeadLetter(
        topic="audit",
        partition=3,
        offset=1234,
        key=b"k",
        value=b"\xff not utf8",
        headers=[("trace", b"abc"), ("empty", None)],
        reason="not_utf8",
        error_class="MalformedEvent",
        detail="invalid start byte",
    )
    assert letter.wire_headers() == [
        ("trace", b"abc"),
        ("empty", None),
        ("auditstream.dlq.reason", b"not_utf8"),
        ("auditstream.dlq.error_class", b"MalformedEvent"),
        ("auditstream.dlq.detail", b"invalid start byte"),
        ("auditstream.source.topic", b"audit"),
        ("auditstream.source.partition", b"3"),
        ("auditstream.source.offset", b"1234"),
    ]


def test_detail_is_capped_on_a_character_boundary() -> None:
    capped = cap_detail("é" * 2000)
    assert len(capped) <= MAX_DETAIL_BYTES
    assert capped.endswith(b"...[truncated]")
    capped.decode("utf-8")  # still valid UTF-8
    assert cap_detail("short") == b"short"
