"""Exec request URIs exactly as each Kubernetes client puts them on the wire.

The audit log records ``requestURI`` as the API server received it, so the same command arrives
in different spellings depending on the client; detections must read all of them. Each encoder
below reproduces one client's query building (order, boolean spelling, escaping):

``kubectl``     client-go ``VersionedParams`` + Go ``url.Values.Encode()``: keys sorted
                (command, container, stderr, stdin, stdout, tty), values ``url.QueryEscape``d
                (space → ``+``, ``/`` → ``%2F``), only true flags present (``omitempty``).
``javascript``  ``@kubernetes/client-node`` ``Exec.exec``: ``querystring.stringify`` of
                ``{stdout, stderr, stdin, tty, command, container}`` in that order, every flag
                present as ``true``/``false``, escaping as ``encodeURIComponent`` (space →
                ``%20``; ``!'()*-._~`` kept); an absent container is ``container=``.
``rancher``     Rancher dashboard shell ``addParams``: container, stdout, stdin, stderr, tty as
                ``1``/``0``, then the command, each ``encodeURIComponent``-escaped.
``python``      the ``kubernetes`` package's ``stream()`` over ``connect_get_namespaced_pod_exec``:
                command, container, stderr, stdin, stdout, tty, ``urlencode`` (``quote_plus``)
                with Python's ``True``/``False``.
``raw``         the caller's query string, as is: for hand-crafted attack URIs.

``subresource="attach"`` takes no command. ``subresource="proxy"`` builds the kubelet path through
the API server's node proxy, ``/api/v1/nodes/<node>/proxy/exec/<ns>/<pod>/<container>``, with
the kubelet's own flag names (``input``, ``output``, ``error``, ``tty`` = ``1``) after the command
values, which keep the client's escaping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote, quote_plus

Client = Literal["kubectl", "javascript", "rancher", "python", "raw"]
Subresource = Literal["exec", "attach", "proxy"]
CLIENTS: Final[tuple[Client, ...]] = ("kubectl", "javascript", "rancher", "python", "raw")


def go_query_escape(text: str) -> str:
    """Go's ``url.QueryEscape``: unreserved ``A-Za-z0-9-_.~`` kept, space as ``+``."""
    return quote_plus(text, safe="")


def js_encode_uri_component(text: str) -> str:
    """JavaScript's ``encodeURIComponent`` (and Node's ``querystring.escape``)."""
    return quote(text, safe="!'()*")


@dataclass(frozen=True, slots=True)
class Streams:
    """Which streams the exec attaches; the clients spell these flags differently."""

    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False


Encoder = Callable[[Sequence[str], "str | None", Streams], str]


def _join(pairs: Sequence[tuple[str, str]], escape: Callable[[str], str]) -> str:
    return "&".join(f"{escape(key)}={escape(value)}" for key, value in pairs)


def _kubectl_query(command: Sequence[str], container: str | None, s: Streams) -> str:
    pairs = [("command", c) for c in command]
    if container:
        pairs.append(("container", container))
    flags = {"stderr": s.stderr, "stdin": s.stdin, "stdout": s.stdout, "tty": s.tty}
    pairs += [(name, "true") for name, on in flags.items() if on]
    return _join(pairs, go_query_escape)


def _javascript_query(command: Sequence[str], container: str | None, s: Streams) -> str:
    def js_bool(on: bool) -> str:
        return "true" if on else "false"

    pairs = [
        ("stdout", js_bool(s.stdout)),
        ("stderr", js_bool(s.stderr)),
        ("stdin", js_bool(s.stdin)),
        ("tty", js_bool(s.tty)),
        *(("command", c) for c in command),
        ("container", container or ""),
    ]
    return _join(pairs, js_encode_uri_component)


def _rancher_query(command: Sequence[str], container: str | None, s: Streams) -> str:
    pairs = [("container", container)] if container is not None else []
    flags = (("stdout", s.stdout), ("stdin", s.stdin), ("stderr", s.stderr), ("tty", s.tty))
    pairs += [(name, "1" if on else "0") for name, on in flags]
    pairs += [("command", c) for c in command]
    return _join(pairs, js_encode_uri_component)


def _python_query(command: Sequence[str], container: str | None, s: Streams) -> str:
    pairs = [("command", c) for c in command]
    if container is not None:
        pairs.append(("container", container))
    pairs += [("stderr", str(s.stderr)), ("stdin", str(s.stdin))]
    pairs += [("stdout", str(s.stdout)), ("tty", str(s.tty))]
    return _join(pairs, go_query_escape)


_ENCODERS: Final[dict[str, Encoder]] = {
    "kubectl": _kubectl_query,
    "javascript": _javascript_query,
    "rancher": _rancher_query,
    "python": _python_query,
}
_ESCAPES: Final[dict[str, Callable[[str], str]]] = {
    "kubectl": go_query_escape,
    "python": go_query_escape,
    "javascript": js_encode_uri_component,
    "rancher": js_encode_uri_component,
}


def exec_request_uri(
    *,
    namespace: str,
    pod: str,
    command: Sequence[str],
    container: str | None,
    client: Client,
    stdin: bool = False,
    stdout: bool = True,
    stderr: bool = True,
    tty: bool = False,
    subresource: Subresource = "exec",
    node: str | None = None,
    raw_query: str | None = None,
) -> str:
    """The ``requestURI`` an exec, attach or kubelet-proxy exec request is logged with."""
    if isinstance(command, str):
        raise TypeError("command is a sequence of argv strings, not one string")
    if client == "raw" and raw_query is None:
        raise ValueError("client 'raw' needs raw_query")
    streams = Streams(stdin=stdin, stdout=stdout, stderr=stderr, tty=tty)
    if subresource == "proxy":
        return _proxy_uri(namespace, pod, command, container, client, streams, node, raw_query)
    if subresource == "attach" and command:
        raise ValueError("attach takes no command")
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/{subresource}"
    query = raw_query if raw_query is not None else _ENCODERS[client](command, container, streams)
    return f"{path}?{query}" if query else path


def _proxy_uri(
    namespace: str,
    pod: str,
    command: Sequence[str],
    container: str | None,
    client: Client,
    streams: Streams,
    node: str | None,
    raw_query: str | None,
) -> str:
    if not node or not container:
        raise ValueError("a kubelet proxy exec needs node and container")
    path = f"/api/v1/nodes/{node}/proxy/exec/{namespace}/{pod}/{container}"
    if raw_query is not None:
        return f"{path}?{raw_query}"
    flags = (
        ("input", streams.stdin),
        ("output", streams.stdout),
        ("error", streams.stderr),
        ("tty", streams.tty),
    )
    pairs = [("command", c) for c in command] + [(name, "1") for name, on in flags if on]
    return f"{path}?{_join(pairs, _ESCAPES[client])}"
