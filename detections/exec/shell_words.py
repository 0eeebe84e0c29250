"""Shell-aware normalisation of an exec argv into the simple commands that would run.

``kubectl exec`` runs argv directly (no shell, so no quoting to remove: each element reaches the
program as is). When argv is a shell with ``-c`` (``sh|bash|ash|dash|zsh|ksh|... [-flags] -c
SCRIPT``) the script is lexed like a POSIX shell would
(:mod:`auditstream.detections.exec.shell_lexer`): quotes
and escapes removed, ``$IFS`` split, the script cut into simple commands at ``; && || | & ( )``
and newlines, redirections kept as attributes. Launch wrappers are peeled off every command
(``env``, ``exec``, ``nohup``, ``setsid``, ``timeout N``, ``nice``, ``stdbuf``, ``sudo``,
``chroot``, ``nsenter``, ``command``, ``busybox``/``toybox <applet>``, ``/bin/`` prefixes,
leading ``VAR=value`` and reserved words such as ``{`` or ``then``), and nested scripts are
followed: ``sh -c`` inside a script, ``eval``, ``su -c``, ``$(...)``, backticks, ``<(...)`` and a
here-document or here-string fed to a shell. Each result keeps the original text for the alert.

Bounds, so that a hostile exec costs little: argv is cut at :data:`MAX_SCRIPT_BYTES` (64 KiB),
at most as much script text again is lexed per exec (nested scripts included), at most
:data:`MAX_COMMANDS` (1024) simple commands and :data:`MAX_WORDS` words are produced, and nesting
stops at :data:`MAX_DEPTH`. Past a bound the rest is dropped; lexing is linear, so the whole call
is linear in its (capped) input.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from auditstream.detections.exec.shell_lexer import LexedCommand, Redirect, lex

__all__ = [
    "MAX_COMMANDS",
    "MAX_DEPTH",
    "MAX_SCRIPT_BYTES",
    "MAX_WORDS",
    "SHELLS",
    "Redirect",
    "SimpleCommand",
    "basename",
    "normalise",
    "shell_script",
]

MAX_SCRIPT_BYTES = 64 * 1024
MAX_COMMANDS = 1024
MAX_WORDS = 16384
MAX_DEPTH = 6

SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "rbash", "yash", "posh"})
_RESERVED = frozenset({"{", "}", "!", "then", "do", "else", "elif", "if", "while", "until", "time"})
_MULTICALL = frozenset({"busybox", "toybox"})
_PLAIN_WRAPPERS = frozenset({"nohup", "setsid", "command", "builtin", "exec", "doas"})
# Options of a wrapper that take a separate argument (so the argument is not the command).
_OPTION_ARGS: dict[str, frozenset[str]] = {
    "env": frozenset({"-u", "-C", "--unset", "--chdir"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "-p", "-t"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "timeout": frozenset({"-s", "-k", "--signal", "--kill-after"}),
    "sudo": frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-T", "-U"}),
    "nsenter": frozenset({"-t", "--target", "-S", "-G", "--setuid", "--setgid", "-w", "-r"}),
    "exec": frozenset({"-a"}),
}
_POSITIONAL = {"timeout": 1, "chroot": 1}
_SHELL_LONG_WITH_ARG = frozenset({"--rcfile", "--init-file"})


@dataclass(frozen=True, slots=True)
class SimpleCommand:
    """One simple command as it would run.

    ``argv`` is after quote removal and wrapper peeling (``wrappers`` lists what was peeled);
    ``text`` is the original source text; ``pipeline`` numbers the pipeline it belongs to within
    one :func:`normalise` result and ``stage`` its position in it; ``depth`` counts the scripts it
    is nested in.
    """

    argv: tuple[str, ...]
    text: str
    redirects: tuple[Redirect, ...] = ()
    pipeline: int = 0
    stage: int = 0
    depth: int = 0
    wrappers: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The program name without its directory (``/bin/nc`` -> ``nc``)."""
        return basename(self.argv[0]) if self.argv else ""

    @property
    def normalised(self) -> str:
        """argv and redirections rendered back as one line, for alerts."""
        words = [shlex.quote(w) if (not w or any(c in w for c in " \t\n'\"")) else w
                 for w in self.argv]  # fmt: skip
        return " ".join(words + [r.render() for r in self.redirects])


def basename(word: str) -> str:
    """The last path component of a command word."""
    return word.rsplit("/", 1)[-1]


def shell_script(argv: Sequence[str]) -> str | None:
    """The ``-c`` script of a shell argv (``argv[0]`` is the shell), or ``None`` without ``-c``.

    Follows bash/dash option parsing: option clusters (``-lc``, ``-ec``, ``+x``), ``-o``/``-O``
    with an argument, long options, ``--``; the script is the first non-option argument.
    """
    has_c = False
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if arg in ("-", "+") or not arg.startswith(("-", "+")):
            break
        if arg.startswith("--"):
            i += 2 if arg in _SHELL_LONG_WITH_ARG else 1
            continue
        if arg.startswith("-") and "c" in arg:
            has_c = True
        i += 2 if ("o" in arg[1:] or "O" in arg[1:]) else 1
    if has_c and i < len(argv):
        return argv[i]
    return None


@dataclass(slots=True)
class _Budget:
    """Shared per-:func:`normalise` limits and counters (never outlives the call)."""

    chars: int = MAX_SCRIPT_BYTES
    commands: int = MAX_COMMANDS
    words: int = MAX_WORDS
    pipelines: int = 0

    def take_script(self, script: str) -> str:
        kept = script[: max(self.chars, 0)]
        self.chars -= len(kept)
        return kept


def normalise(argv: Sequence[str]) -> tuple[SimpleCommand, ...]:
    """The simple commands an exec of ``argv`` would run (see the module docstring)."""
    budget = _Budget()
    argv_budget = _Budget()  # argv has its own 64 KiB so that it never starves its script
    kept: list[str] = []
    for arg in argv[:MAX_WORDS]:
        if argv_budget.chars <= 0:
            break
        kept.append(argv_budget.take_script(arg))
    out: list[SimpleCommand] = []
    if kept:
        text = " ".join(kept)
        _expand(tuple(kept), (), text, 0, (0, 0), budget, out)
    return tuple(out)


def _peel(words: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Remove launch wrappers, assignments and reserved words; return (argv, wrappers)."""
    peeled: list[str] = []
    for _ in range(16):  # wrappers nest only a few deep; the bound keeps this linear
        if not words:
            break
        first = words[0]
        name = basename(first)
        if first in _RESERVED or _is_assignment(first):
            words = words[1:]
            continue
        if name in _MULTICALL and len(words) > 1:
            words = words[1:]
        elif name in _PLAIN_WRAPPERS or name in _OPTION_ARGS or name in _POSITIONAL:
            if name == "command" and len(words) > 1 and words[1] in ("-v", "-V"):
                break
            words = _skip_options(name, words[1:])
        else:
            break
        peeled.append(name)
    return words, tuple(peeled)


def _skip_options(name: str, rest: tuple[str, ...]) -> tuple[str, ...]:
    """Drop a wrapper's options, option arguments and fixed positionals from ``rest``."""
    with_arg = _OPTION_ARGS.get(name, frozenset())
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            i += 1
            break
        if name == "env" and _is_assignment(arg):
            i += 1
        elif arg.startswith("-") and len(arg) > 1:
            i += 2 if arg in with_arg else 1
        else:
            break
    return rest[i + _POSITIONAL.get(name, 0) :]


def _is_assignment(word: str) -> bool:
    head, eq, _ = word.partition("=")
    return (
        bool(eq)
        and bool(head)
        and (head[0].isalpha() or head[0] == "_")
        and all(c.isalnum() or c == "_" for c in head)
    )


def _nested_script(argv: tuple[str, ...], redirects: tuple[Redirect, ...]) -> list[str]:
    """Scripts this command itself runs: ``sh -c``, ``eval``, ``su -c``, stdin of a shell."""
    name = basename(argv[0])
    if name in SHELLS:
        script = shell_script(argv)
        if script is not None:
            return [script]
        if len(argv) == 1 or all(a.startswith("-") for a in argv[1:]):
            return [r.body for r in redirects if r.op.startswith("<<") and r.body]
        return []
    if name == "eval":
        return [" ".join(argv[1:])]
    if name in ("su", "runuser"):
        for i, arg in enumerate(argv[:-1]):
            if arg in ("-c", "--command"):
                return [argv[i + 1]]
    return []


def _expand(
    words: tuple[str, ...],
    redirects: tuple[Redirect, ...],
    text: str,
    depth: int,
    position: tuple[int, int],
    budget: _Budget,
    out: list[SimpleCommand],
) -> None:
    """Emit ``words`` as simple commands, following the scripts it runs."""
    argv, wrappers = _peel(words)
    if not argv:
        argv = words[:1]  # `exec 3<>/dev/tcp/...`: keep the word that carries the redirect
    scripts = _nested_script(argv, redirects) if argv and depth < MAX_DEPTH else []
    if scripts and not redirects:  # a bare `sh -c SCRIPT` is only its script
        for script in scripts:
            _script(script, depth + 1, budget, out)
        return
    if budget.commands <= 0:
        return
    budget.commands -= 1
    out.append(SimpleCommand(argv, text, redirects, position[0], position[1], depth, wrappers))
    for script in scripts:
        _script(script, depth + 1, budget, out)


def _script(script: str, depth: int, budget: _Budget, out: list[SimpleCommand]) -> None:
    """Lex one script and emit its commands, pipelines numbered, nested scripts followed."""
    script = budget.take_script(script)
    if not script or budget.commands <= 0 or budget.words <= 0:
        return
    lexed = lex(script, max_words=budget.words)
    budget.words -= sum(len(c.words) for c in lexed)
    budget.pipelines += 1
    stage = 0
    for command in lexed:
        _emit_lexed(command, depth, (budget.pipelines, stage), budget, out)
        if command.sep in ("|", "|&"):
            stage += 1
        else:
            budget.pipelines += 1
            stage = 0


def _emit_lexed(
    command: LexedCommand,
    depth: int,
    position: tuple[int, int],
    budget: _Budget,
    out: list[SimpleCommand],
) -> None:
    if command.words or command.redirects:
        _expand(command.words, command.redirects, command.text, depth, position, budget, out)
    if depth < MAX_DEPTH:
        for nested in command.nested:
            _script(nested, depth + 1, budget, out)
