"""Building blocks shared by the native rules: allow-lists, targets, tool families.

Allow-lists are applied to a parsed connection target or URL only, never to a whole command:
a ``localhost`` in a header, a comment or another command cannot silence an alert. Every
pattern is RE2 (linear time on attacker-controlled text) and compiled at import.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import re2

from auditstream.detections.exec.request import ExecRequest
from auditstream.detections.exec.shell_words import SHELLS, SimpleCommand, shell_script
from auditstream.detections.memo import memo
from auditstream.detections.rule_hit import Explanation

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False


def compile_re2(pattern: str) -> Any:
    """Compile with RE2 (linear time); a bad pattern fails at import, not per event."""
    return re2.compile(pattern, _OPTIONS)


ALLOWED_HOSTS = frozenset(
    {
        "localhost",
        "ip6-localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    }
)
HEALTH_PATHS = ("/healthz", "/readyz", "/livez", "/api/v1/health")
IDENTITY_PATHS = (
    "/openid/v1/jwks",
    "/openid-connect/certs",
    "/.well-known/openid-configuration",
    "/.well-known/jwks.json",
)
NETCATS = frozenset(
    {"nc", "ncat", "netcat", "nc.traditional", "nc.openbsd", "netcat.traditional", "cryptcat"}
)
INTERPRETER_NAMES = compile_re2(
    r"^(?:python(?:[23](?:\.[0-9]+)?)?|pypy3?|perl(?:5[0-9.]*)?|ruby[0-9.]*|php[0-9.]*"
    r"|node|nodejs|lua(?:jit|[0-9.]+)?|g?awk|mawk|nawk|pwsh|powershell)$"
)
_URL_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_:[]")
_NC_OPTS_WITH_ARG = frozenset("pswiqxXPTOIMmVW")
_NC_LONG_WITH_ARG = frozenset(
    {"--exec", "--sh-exec", "--lua-exec", "--source", "--source-port", "--proxy", "--wait"}
)


def allowed_host(host: str) -> bool:
    """True for loopback and the in-cluster API server name (exact match, any case)."""
    host = host.strip().lower().rstrip(".").strip("[]")
    if host in ALLOWED_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host_and_path(url: str) -> tuple[str, str] | None:
    """Host and path of a ``scheme://`` URL, or ``None`` when the authority is not plain.

    Conservative on purpose: the authority ends at the first ``/ ? # \\``; user-info before the
    last ``@`` is dropped; anything unusual left in the host (globs, quotes, spaces) makes the
    URL "unknown", which never matches an allow-list.
    """
    _, sep, rest = url.partition("://")
    if not sep:
        return None
    end = len(rest)
    for stop in "/?#\\":
        found = rest.find(stop)
        if 0 <= found < end:
            end = found
    authority, tail = rest[:end], rest[end:]
    host = authority.rsplit("@", 1)[-1].lower()
    if not host or not set(host) <= _URL_HOST_CHARS:
        return None
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    path = tail.split("?", 1)[0].split("#", 1)[0] if tail.startswith("/") else "/"
    return host, path


def allowed_path(path: str) -> bool:
    """Health and OIDC/JWKS endpoints (a component sub-check like ``/readyz/etcd`` included)."""
    path = path.rstrip("/").lower()
    parent = path.rsplit("/", 1)[0]
    return any(path.endswith(p) for p in IDENTITY_PATHS + HEALTH_PATHS) or any(
        parent.endswith(p) for p in HEALTH_PATHS
    )


def dev_socket(path: str) -> tuple[str, str] | None:
    """``(host, port)`` of a bash ``/dev/tcp/HOST/PORT`` or ``/dev/udp/...`` path."""
    for prefix in ("/dev/tcp/", "/dev/udp/"):
        at = path.find(prefix)
        if at >= 0:
            host, _, port = path[at + len(prefix) :].partition("/")
            return host, port.split("/", 1)[0]
    return None


def socket_redirects(cmd: SimpleCommand) -> list[tuple[str, str]]:
    """``(host, port)`` for every redirection of ``cmd`` to ``/dev/tcp`` or ``/dev/udp``."""
    found = [dev_socket(r.target) for r in cmd.redirects]
    return [f for f in found if f is not None]


def is_shell(cmd: SimpleCommand) -> bool:
    return cmd.name in SHELLS


def is_interpreter(cmd: SimpleCommand) -> bool:
    return _interpreter_name(cmd.name)


@memo
def _interpreter_name(name: str) -> bool:
    return INTERPRETER_NAMES.search(name) is not None


_CODE_FLAGS = frozenset({"-c", "-m", "-e", "-E", "-r", "-p", "-n", "--eval", "--print", "-f"})


def runs_stdin(cmd: SimpleCommand) -> bool:
    """True when a shell or interpreter takes its program from stdin (``| sh``, ``| python3 -``,
    ``| sh -s - arg``); ``| python3 -m json.tool`` or ``| sh script`` do not."""
    args = cmd.argv[1:]
    if is_shell(cmd):
        if shell_script(cmd.argv) is not None:
            return False
        return "s" in short_flags(cmd) or all(a.startswith(("-", "+")) for a in args)
    if is_interpreter(cmd):
        return not any(a in _CODE_FLAGS for a in args) and all(
            a == "-" or a.startswith("-") for a in args
        )
    return False


def code_text(cmd: SimpleCommand) -> str:
    """What an interpreter runs: its arguments plus here-document / here-string bodies."""
    bodies = [r.body for r in cmd.redirects if r.body]
    return "\n".join([" ".join(cmd.argv[1:]), *bodies])


def short_flags(cmd: SimpleCommand) -> set[str]:
    """Letters of single-dash option clusters before any option argument (``-lvnp`` -> l,v,n,p)."""
    flags: set[str] = set()
    for arg in cmd.argv[1:]:
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 1:
            for letter in arg[1:]:
                if not letter.isalpha():
                    break
                flags.add(letter)
    return flags


def netcat_target(cmd: SimpleCommand) -> str:
    """The host a netcat connects to ("" for a listener or when none is given)."""
    args = cmd.argv[1:]
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg.startswith("--"):
            skip = arg in _NC_LONG_WITH_ARG
            continue
        if arg.startswith("-") and len(arg) > 1:
            skip = arg[-1] in _NC_OPTS_WITH_ARG or arg[-1] in "ec"
            continue
        if not arg.isdigit():
            return arg
    return ""


def network_client(cmd: SimpleCommand) -> str | None:
    """If ``cmd`` opens a network connection, its target host ("" if unknown), else ``None``."""
    name = cmd.name
    if name in NETCATS:
        return None if "z" in short_flags(cmd) else netcat_target(cmd)
    if name == "telnet":
        rest = [a for a in cmd.argv[1:] if not a.startswith("-")]
        return rest[0] if rest else ""
    if name == "openssl" and "s_client" in cmd.argv[1:2]:
        return _openssl_host(cmd.argv)
    if name == "socat":
        hosts = [h for h in (socat_network_host(a) for a in cmd.argv[1:]) if h is not None]
        return hosts[0] if hosts else None
    sockets = socket_redirects(cmd)
    return sockets[0][0] if sockets else None


def _openssl_host(argv: tuple[str, ...]) -> str:
    for i, arg in enumerate(argv):
        if arg in ("-connect", "--connect") and i + 1 < len(argv):
            return argv[i + 1].rsplit(":", 1)[0].strip("[]")
        if arg.startswith(("-connect=", "--connect=")):
            return arg.split("=", 1)[1].rsplit(":", 1)[0].strip("[]")
    return ""


_SOCAT_NET = (
    "tcp", "udp", "sctp", "openssl", "ssl", "socks", "proxy", "dccp", "vsock", "ip4", "ip6",
)  # fmt: skip


def socat_network_host(address: str) -> str | None:
    """Host of a socat network address (keywords are case-insensitive), else ``None``."""
    head, _, rest = address.partition(":")
    keyword = head.split(",", 1)[0].lower()
    if not keyword.startswith(_SOCAT_NET):
        return None
    if "listen" in keyword or keyword.endswith("-l"):
        return ""
    return rest.split(":", 1)[0].split(",", 1)[0]


def hit(
    indicator: str, cmd: SimpleCommand, request: ExecRequest, target: str | None = None
) -> Explanation:
    """A :class:`Explanation` whose detail names the target, the route and the original text."""
    parts = [f"target={target}"] if target else []
    if request.kind.startswith("proxy_"):
        parts.append(f"via kubelet proxy {request.path}")
    if request.dropped_pairs:
        parts.append(f"dropped_pairs={request.dropped_pairs}")
    parts.append(f"text={cmd.text}")
    return Explanation(indicator=indicator, simple_command=cmd.normalised, detail="; ".join(parts))
