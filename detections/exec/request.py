"""The exec request as the Kubernetes API server (or the kubelet) sees it.

The Elastic rules URL-decode the whole ``requestURI`` and then cut it with one regular expression.
The API server does something else: Go's ``net/url.ParseQuery`` splits the *raw* query on ``&``,
decodes every key and value on its own, and ``runtime.ParameterCodec`` turns the values into a
``PodExecOptions``. Whatever order, encoding or junk a client sends, the command that runs is
what that code produces, so that is what this module reproduces:

* ``ParseQuery`` (golang ``src/net/url/url.go``): pairs are split on ``&`` only; a pair that
  contains ``;`` is dropped (Go >= 1.17), as is a pair whose key or value has a malformed escape
  (``%`` not followed by two hex digits); empty pairs are skipped; ``+`` decodes to a space. The
  rest of the query is kept, so one bad pair never hides the command.
* Go strings are byte strings. Decoded bytes that are not valid UTF-8 are turned into U+FFFD
  (``errors="replace"``): every ASCII byte (all that shell syntax and indicators are made of)
  survives unchanged and the result can always be serialised into an alert.
* ``PodExecOptions`` / ``PodAttachOptions`` (k8s ``pkg/apis/core/v1/zz_generated.conversion.go``
  and ``apimachinery/pkg/runtime/conversion.go``): every ``command`` value in order is argv;
  ``container`` is the first value; a boolean is false when absent or when its *first* value is
  ``0`` or case-insensitively ``false``, and true for anything else (``1``, ``True``, ``""``).
* Through ``/api/v1/nodes/<node>/proxy/exec|run/...`` the query reaches the kubelet untouched
  (``pkg/kubelet/server/server.go``): ``exec`` takes argv from ``command`` like the API server
  but reads booleans from its own keys ``input``/``output``/``error``/``tty`` with
  ``FormValue(...) == "1"``; the legacy ``run`` endpoint splits the first
  ``cmd`` value on single spaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from auditstream.detections.memo import memo

ExecKind = Literal["exec", "attach", "proxy_exec", "proxy_run"]

_HEX = frozenset(b"0123456789abcdefABCDEF")
_POD_SUBRESOURCES: dict[str, ExecKind] = {"exec": "exec", "attach": "attach"}
_KUBELET_ENDPOINTS: dict[str, ExecKind] = {"exec": "proxy_exec", "run": "proxy_run"}
_SUBRESOURCES = frozenset({*_POD_SUBRESOURCES, "proxy"})
"""The ``objectRef.subresource`` values an exec request can carry (kubelet routes: ``proxy``)."""


@dataclass(frozen=True, slots=True)
class ExecRequest:
    """One decoded exec/attach request: the single value every native rule reads.

    ``container`` is ``""`` when the client left the choice to the API server. ``dropped_pairs``
    counts query pairs the server ignored (malformed escape or ``;``): attackers use them to break
    naive parsers, so it is worth showing in an alert. ``query`` is the raw query and ``path`` the
    decoded path, both kept for the alert.
    """

    kind: ExecKind
    namespace: str
    pod: str
    container: str
    argv: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    dropped_pairs: int
    query: str
    path: str
    node: str = ""


def go_unescape(text: str, *, query_component: bool = True) -> str | None:
    """Go ``url.unescape``: ``None`` where Go returns an error (a malformed ``%`` escape).

    With ``query_component`` a ``+`` is a space (``QueryUnescape``); a path keeps its ``+``.
    Characters outside ASCII in ``text`` (not valid on the wire, but possible in a log) are taken
    as their UTF-8 bytes, which is what Go would have received.
    """
    if "%" not in text and not (query_component and "+" in text):
        return text
    raw = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    i, size = 0, len(raw)
    while i < size:
        byte = raw[i]
        if byte == 0x25:  # "%"
            if i + 2 >= size or raw[i + 1] not in _HEX or raw[i + 2] not in _HEX:
                return None
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
            continue
        out.append(0x20 if byte == 0x2B and query_component else byte)
        i += 1
    return out.decode("utf-8", "replace")


def parse_query(query: str) -> tuple[dict[str, list[str]], int]:
    """Go ``url.ParseQuery``: the values by key in order, and how many pairs were dropped."""
    values: dict[str, list[str]] = {}
    dropped = 0
    for pair in query.split("&"):
        if ";" in pair:
            dropped += 1
            continue
        if not pair:
            continue
        raw_key, _, raw_value = pair.partition("=")
        key = go_unescape(raw_key)
        value = go_unescape(raw_value)
        if key is None or value is None:
            dropped += 1
            continue
        values.setdefault(key, []).append(value)
    return values, dropped


_parsed_query = memo(parse_query)  # one command, many pods


def api_bool(values: dict[str, list[str]], key: str) -> bool:
    """``runtime.Convert_Slice_string_To_bool``: first value; only ``0``/``false`` are false."""
    found = values.get(key)
    if not found:
        return False
    first = found[0]
    return not (first == "0" or first.lower() == "false")


def kubelet_bool(values: dict[str, list[str]], key: str) -> bool:
    """The kubelet's ``req.FormValue(key) == "1"`` (first value, nothing else is true)."""
    found = values.get(key)
    return found is not None and found[0] == "1"


def _first(values: dict[str, list[str]], key: str) -> str:
    found = values.get(key)
    return found[0] if found else ""


def _split_uri(request_uri: str) -> tuple[str, str]:
    """Split a request URI into raw path and raw query (Go ``ParseRequestURI``: no fragment)."""
    uri = request_uri.strip()
    if "://" in uri.split("?", 1)[0]:  # absolute form: drop scheme and authority
        after = uri.split("://", 1)[1]
        slash = after.find("/")
        uri = after[slash:] if slash >= 0 else "/"
    path, _, query = uri.partition("?")
    return path, query


def _segments(raw_path: str) -> list[str] | None:
    """Decoded path segments as the API server's RequestInfo sees them (``None``: a 400)."""
    decoded = go_unescape(raw_path, query_component=False)
    if decoded is None:
        return None
    return [part for part in decoded.split("/") if part]


def may_be_exec_request(request_uri: str, subresource: str | None) -> bool:
    """The cheap half of :func:`parse_exec_request`: False rules a request out for certain."""
    if subresource is not None:
        return subresource in _SUBRESOURCES
    return _may_name_exec(request_uri)


def _may_name_exec(request_uri: str) -> bool:
    """Cheap test for events without a subresource: could the path route to exec/attach/run?

    A percent-escape anywhere in the path may spell one of them, so it keeps the full parse.
    """
    path = request_uri.partition("?")[0]
    return "%" in path or "/exec" in path or "/attach" in path or "/run" in path


def parse_exec_request(request_uri: str, subresource: str | None) -> ExecRequest | None:
    """Decode a pod ``exec``/``attach`` or kubelet-proxy ``exec``/``run`` request.

    ``subresource`` is the audit event's ``objectRef.subresource`` and only a cheap pre-filter;
    the path decides. Returns ``None`` for any other request, or a path Go would reject.
    """
    if not may_be_exec_request(request_uri, subresource):
        return None
    raw_path, query = _split_uri(request_uri)
    parts = _segments(raw_path)
    if parts is None:
        return None
    values, dropped = _parsed_query(query)  # shared: read, never modified
    path = "/" + "/".join(parts)
    # /api/v1/namespaces/<ns>/pods/<pod>/<exec|attach>
    if len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
        kind = _POD_SUBRESOURCES.get(parts[6])
        if kind is None:
            return None
        return ExecRequest(
            kind=kind,
            namespace=parts[3],
            pod=parts[5],
            container=_first(values, "container"),
            argv=tuple(values.get("command", ())) if kind == "exec" else (),
            stdin=api_bool(values, "stdin"),
            stdout=api_bool(values, "stdout"),
            stderr=api_bool(values, "stderr"),
            tty=api_bool(values, "tty"),
            dropped_pairs=dropped,
            query=query,
            path=path,
        )
    return _kubelet_proxy(parts, values, dropped, query, path)


def _kubelet_proxy(
    parts: list[str], values: dict[str, list[str]], dropped: int, query: str, path: str
) -> ExecRequest | None:
    """``/api/v1/nodes/<node>/proxy/<exec|run>/<ns>/<pod>[/<uid>]/<container>``."""
    if len(parts) not in (9, 10) or parts[:3] != ["api", "v1", "nodes"] or parts[4] != "proxy":
        return None
    kind = _KUBELET_ENDPOINTS.get(parts[5])
    if kind is None:
        return None
    if kind == "proxy_run":
        argv = tuple(_first(values, "cmd").split(" "))
    else:
        argv = tuple(values.get("command", ()))
    return ExecRequest(
        kind=kind,
        namespace=parts[6],
        pod=parts[7],
        container=parts[-1],
        argv=argv,
        stdin=kubelet_bool(values, "input"),
        stdout=kubelet_bool(values, "output"),
        stderr=kubelet_bool(values, "error"),
        tty=kubelet_bool(values, "tty"),
        dropped_pairs=dropped,
        query=query,
        path=path,
        node=parts[3],
    )


_decoded_exec_request = memo(parse_exec_request)  # the stages of one exec share one URI


def exec_request_of(request_uri: str, subresource: str | None) -> ExecRequest | None:
    """Is this event an exec request, and which one: the one place that decides it.

    The detector shares the answer with every rule and the counters count it, so the two can
    never disagree. Routine URIs are ruled out before the memo and never fill it.
    """
    if not may_be_exec_request(request_uri, subresource):
        return None
    return _decoded_exec_request(request_uri, subresource)
