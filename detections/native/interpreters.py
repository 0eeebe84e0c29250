"""Socket-to-shell idioms inside interpreter one-liners (python, perl, ruby, php, node, lua,
awk, PowerShell).

An interpreter that opens a connection *and* hands it to a process (``exec``, ``subprocess``,
``pty.spawn``, ``child_process``, ``fdopen`` ...) is a reverse shell wherever it connects. A bare
connection fires too, unless its literal target is allow-listed (a health check to
``localhost``); importing ``socket`` without connecting, or a ``connect_ex`` probe, does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auditstream.detections.exec.shell_words import SimpleCommand
from auditstream.detections.memo import memo

from .indicators import allowed_host, code_text, compile_re2


@dataclass(frozen=True, slots=True)
class Language:
    """How one interpreter family connects, names its target and spawns a process."""

    indicator: str
    names: Any
    connect: Any
    host: Any
    spawn: Any


LANGUAGES = (
    Language(
        "python_socket_connect",
        compile_re2(r"^(?:python(?:[23](?:\.[0-9]+)?)?|pypy3?)$"),
        compile_re2(r"(?s)socket.*\.connect\s*\(|create_connection\s*\("),
        compile_re2(r"""(?:\.connect|create_connection)\s*\(\s*\(\s*["']([^"']+)["']"""),
        compile_re2(
            r"""subprocess|pty\.spawn|\bspawn\s*\(|dup2\s*\(|os\.system|os\.exec|os\.popen"""
            r"""|/bin/|["'](?:ba)?sh["']"""
        ),
    ),
    Language(
        "perl_socket",
        compile_re2(r"^perl(?:5[0-9.]*)?$"),
        compile_re2(r"(?s)IO::Socket|(?i:socket).*\bconnect\s*\("),
        compile_re2(
            r"""PeerAddr\s*(?:=>|,)\s*["']([^"':]+)|inet_aton\s*\(\s*["']([^"']+)["']"""
            r"""|\$i\s*=\s*["']([^"']+)["']"""
        ),
        compile_re2(r"""\bexec\b|\bsystem\b|fdopen|open\s*\(\s*STD(?:IN|OUT)|/bin/|\bqx\b"""),
    ),
    Language(
        "ruby_tcpsocket",
        compile_re2(r"^ruby[0-9.]*$"),
        compile_re2(r"TCPSocket|Socket\.tcp"),
        compile_re2(r"""(?:TCPSocket\.(?:new|open)|Socket\.tcp)\s*\(?\s*["']([^"']+)["']"""),
        compile_re2(r"""\bexec\b|\bsystem\b|\bspawn\b|popen|/bin/|%x"""),
    ),
    Language(
        "php_fsockopen",
        compile_re2(r"^php[0-9.]*$"),
        compile_re2(r"fsockopen|stream_socket_client|socket_connect"),
        compile_re2(
            r"""(?:fsockopen|stream_socket_client)\s*\(\s*["'](?:(?:tcp|udp|ssl|tls)://)?"""
            r"""([^"':/]+)"""
        ),
        compile_re2(r"""exec|system|passthru|popen|proc_open|/bin/|`"""),
    ),
    Language(
        "node_net_socket",
        compile_re2(r"^(?:node|nodejs)$"),
        compile_re2(r"""net\.Socket|net\.connect|net\.createConnection|["']net["']"""),
        compile_re2(
            r"""(?:connect|createConnection)\s*\(\s*[0-9]+\s*,\s*["']([^"']+)["']"""
            r"""|host\s*:\s*["']([^"']+)["']"""
        ),
        compile_re2(r"""child_process|spawn\s*\(|/bin/"""),
    ),
    Language(
        "lua_socket",
        compile_re2(r"^lua(?:jit|[0-9.]+)?$"),
        compile_re2(r"""socket\.tcp|socket\.connect"""),
        compile_re2(r"""connect\s*\(\s*["']([^"']+)["']"""),
        compile_re2(r"""os\.execute|io\.popen|/bin/"""),
    ),
    Language(
        "awk_inet",
        compile_re2(r"^(?:g?awk|mawk|nawk)$"),
        compile_re2(r"/inet[46]?/(?:tcp|udp)/"),
        compile_re2(r"""/inet[46]?/(?:tcp|udp)/[0-9]+/([^/\s"']+)/"""),
        compile_re2(r"""\|&|system\s*\("""),
    ),
    Language(
        "powershell_tcpclient",
        compile_re2(r"^(?:pwsh|powershell)$"),
        compile_re2(r"(?i)Sockets\.TCPClient"),
        compile_re2(r"""(?i)TCPClient\s*\(\s*["']([^"']+)["']"""),
        compile_re2(r"(?i)\biex\b|invoke-expression|GetStream"),
    ),
)
PTY_SPAWN = compile_re2(r"pty\.spawn\s*\(|from\s+pty\s+import")
_PYTHON = LANGUAGES[0]


def _first_group(match: Any) -> str | None:
    if match is None:
        return None
    groups: tuple[str | None, ...] = match.groups()
    return next((g for g in groups if g), None)


@memo
def _language_of(name: str) -> Language | None:
    """The first language whose interpreter names match (command names repeat: memoised)."""
    return next((lang for lang in LANGUAGES if lang.names.search(name) is not None), None)


def interpreter_socket(cmd: SimpleCommand) -> tuple[str, str] | None:
    """``(indicator, target)`` when an interpreter one-liner wires a socket to a shell."""
    lang = _language_of(cmd.name)
    if lang is None:
        return None
    code = code_text(cmd)
    if lang is _PYTHON and PTY_SPAWN.search(code) is not None:
        return "python_pty_spawn", ""
    if lang.connect.search(code) is None:
        return None
    host = _first_group(lang.host.search(code)) or ""
    if lang.spawn.search(code) is not None or not host or not allowed_host(host):
        return lang.indicator, host
    return None
