"""One-pass POSIX shell lexer, close enough to ``sh`` for detection and linear in its input.

It does what a shell does before it runs anything: quote removal (single, double, ``$'...'``,
backslash), line continuations, comments, ``$IFS``/``${IFS}`` as a field separator (a space inside
double quotes), brace expansion of a plain ``{a,b}`` word, the control operators ``; & && || |
|& ( )`` and newline, redirections with their optional io-number (``0>&1``, ``>&``, ``<>``,
``&>``, here-documents and here-strings with their bodies), and it hands back the text of
``$(...)``, backticks and ``<(...)``/``>(...)`` as nested scripts for the caller to lex in turn.

It does not expand other parameters, globs or aliases: ``$HOST`` stays ``$HOST``. Every
character is looked at a bounded number of times; a nested script is re-lexed by the caller, so
the total work is the input length times the nesting depth the caller allows. ``max_words``
stops lexing (the rest is dropped) so a hostile script cannot produce unbounded output.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

_BLANK = " \t"
_OPERATOR_CHARS = ";&|()\n"
_ANSI_SIMPLE = {
    "n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
    "e": "\x1b", "E": "\x1b", "\\": "\\", "'": "'", '"': '"', "?": "?",
}  # fmt: skip
_HEX_DIGITS = "0123456789abcdefABCDEF"


@dataclass(frozen=True, slots=True)
class Redirect:
    """One redirection: ``fd`` is the explicit io-number or ``None``; ``body`` holds the text of
    a here-document (``<<``) or here-string (``<<<``), which a shell or interpreter reads."""

    op: str
    target: str
    fd: int | None = None
    body: str = ""

    def render(self) -> str:
        """The redirection as a shell would print it, e.g. ``0>&1`` or ``>& /dev/tcp/h/1``."""
        prefix = "" if self.fd is None else str(self.fd)
        sep = "" if self.op in (">&", "<&") and self.target.isdigit() else " "
        target = shlex.quote(self.target) if any(c in self.target for c in " \t\n") else self.target
        return f"{prefix}{self.op}{sep}{target}"


@dataclass(frozen=True, slots=True)
class LexedCommand:
    """A simple command as lexed: words after quote removal, redirections, source text, the
    operator that ended it, and the nested scripts found in it."""

    words: tuple[str, ...]
    redirects: tuple[Redirect, ...]
    text: str
    sep: str
    nested: tuple[str, ...]


@dataclass(slots=True)
class _Pending:
    op: str
    fd: int | None
    target: str = ""
    body: str = ""
    strip_tabs: bool = False


@dataclass(slots=True)
class _State:
    words: list[str] = field(default_factory=list)
    redirects: list[_Pending] = field(default_factory=list)
    nested: list[str] = field(default_factory=list)
    buf: list[str] = field(default_factory=list)
    started: bool = False
    quoted: bool = False
    word_start: int = 0
    waiting: _Pending | None = None
    heredocs: list[_Pending] = field(default_factory=list)
    cmd_start: int = 0


def lex(src: str, max_words: int = 16384) -> tuple[LexedCommand, ...]:
    """Lex ``src`` into simple commands (see the module docstring for what is handled)."""
    return _Lexer(src, max_words).run()


class _Lexer:
    """Per-call lexer state; created, run once and dropped (never shared)."""

    def __init__(self, src: str, max_words: int) -> None:
        self.src = src
        self.n = len(src)
        self.i = 0
        self.max_words = max_words
        self.total_words = 0
        self.out: list[LexedCommand] = []
        self.st = _State()

    def run(self) -> tuple[LexedCommand, ...]:
        while self.i < self.n and self.total_words < self.max_words:
            self._step()
        self._end_command("")
        return tuple(self.out)

    def _step(self) -> None:
        src, i, st = self.src, self.i, self.st
        c = src[i]
        if c in _BLANK:
            self._finish_word()
            self.i += 1
        elif c == "#" and not st.started:
            end = src.find("\n", i)
            self.i = self.n if end < 0 else end
        elif c in _OPERATOR_CHARS:
            self._operator(c)
        elif c in "<>":
            self._redirect_or_substitution()
        else:
            self._word_char(c)

    # -- words -------------------------------------------------------------------------------

    def _begin(self) -> None:
        if not self.st.started:
            self.st.started = True
            self.st.word_start = self.i

    def _word_char(self, c: str) -> None:
        self._begin()
        st, src = self.st, self.src
        if c == "\\":
            if self.i + 1 < self.n and src[self.i + 1] != "\n":
                st.buf.append(src[self.i + 1])
                st.quoted = True
            self.i += 2
        elif c == "'":
            end = src.find("'", self.i + 1)
            end = self.n if end < 0 else end
            st.buf.append(src[self.i + 1 : end])
            st.quoted = True
            self.i = end + 1
        elif c == '"':
            self.i = self._double_quoted(self.i + 1)
            st.quoted = True
        elif c == "$":
            self._dollar(in_double=False)
        elif c == "`":
            self._backtick()
        else:
            st.buf.append(c)
            self.i += 1

    def _double_quoted(self, i: int) -> int:
        """Read a ``"..."`` body starting at ``i``; return the index after the closing quote."""
        src, buf = self.src, self.st.buf
        while i < self.n:
            c = src[i]
            if c == '"':
                return i + 1
            if c == "\\" and i + 1 < self.n and src[i + 1] in '$`"\\\n':
                if src[i + 1] != "\n":
                    buf.append(src[i + 1])
                i += 2
            elif c in "$`":
                self.i = i
                self._dollar(in_double=True) if c == "$" else self._backtick()
                i = self.i
            else:
                buf.append(c)
                i += 1
        return i

    def _dollar(self, *, in_double: bool) -> None:
        src, i, buf = self.src, self.i, self.st.buf
        nxt = src[i + 1] if i + 1 < self.n else ""
        if nxt == "'" and not in_double:
            self.i = self._ansi_c(i + 2)
            self.st.quoted = True
        elif nxt == '"' and not in_double:
            self.i = self._double_quoted(i + 2)
            self.st.quoted = True
        elif nxt == "(":
            end = self._matching_paren(i + 1)
            body = src[i + 2 : end]
            if not body.startswith("("):  # $(( arithmetic )) is not a script
                self.st.nested.append(body)
            buf.append(src[i : end + 1])
            self.i = end + 1
        elif nxt == "{":
            end = src.find("}", i + 2)
            end = self.n if end < 0 else end
            self._expansion(src[i + 2 : end].startswith("IFS"), src[i : end + 1], in_double)
            self.i = end + 1
        elif src.startswith("IFS", i + 1) and not _is_name_char(src, i + 4):
            self._expansion(True, "$IFS", in_double)
            self.i = i + 4
        else:
            buf.append("$")
            self.i = i + 1

    def _expansion(self, is_ifs: bool, text: str, in_double: bool) -> None:
        """``$IFS`` splits fields where unquoted and is a space inside double quotes."""
        if not is_ifs:
            self.st.buf.append(text)
        elif in_double:
            self.st.buf.append(" ")
        else:
            self._finish_word()

    def _backtick(self) -> None:
        src, i = self.src, self.i + 1
        parts: list[str] = []
        while i < self.n and src[i] != "`":
            if src[i] == "\\" and i + 1 < self.n:
                parts.append(src[i + 1])
                i += 2
            else:
                parts.append(src[i])
                i += 1
        self.st.nested.append("".join(parts))
        self.st.buf.append(src[self.i : i + 1])
        self.i = i + 1

    def _ansi_c(self, i: int) -> int:
        """Decode a bash ``$'...'`` body from ``i``; return the index after the closing quote."""
        src, buf = self.src, self.st.buf
        while i < self.n and src[i] != "'":
            if src[i] != "\\" or i + 1 >= self.n:
                buf.append(src[i])
                i += 1
                continue
            i = _ansi_escape(src, i + 1, buf)
        return i + 1

    def _matching_paren(self, i: int) -> int:
        """Index of the ``)`` closing the ``(`` at ``i`` (quotes skipped), or the end."""
        src, depth = self.src, 0
        while i < self.n:
            c = src[i]
            if c == "\\":
                i += 2
                continue
            if c == "'":
                end = src.find("'", i + 1)
                i = self.n if end < 0 else end + 1
                continue
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    return i
            i += 1
        return self.n

    def _finish_word(self) -> None:
        st = self.st
        if not st.started:
            return
        word = "".join(st.buf)
        raw = self.src[st.word_start : self.i]
        quoted = st.quoted
        st.buf.clear()
        st.started = st.quoted = False
        if not word and not quoted:  # an unquoted empty expansion yields no field
            return
        if st.waiting is not None:
            st.waiting.target = word
            if st.waiting.op.startswith("<<") and st.waiting.op != "<<<":
                st.heredocs.append(st.waiting)
            elif st.waiting.op == "<<<":
                st.waiting.body = word
            st.waiting = None
            return
        expanded = _brace_expand(raw, word)
        self.total_words += len(expanded)
        st.words.extend(expanded)

    # -- operators and redirections ----------------------------------------------------------

    def _operator(self, c: str) -> None:
        src, i = self.src, self.i
        two = src[i : i + 2]
        if two in ("&&", "||", "|&", ";;"):
            self._end_command(two, width=2)
        elif two in ("&>",):
            self._redirect_or_substitution()
        else:
            self._end_command("\n" if c == "\n" else c, width=1)

    def _redirect_or_substitution(self) -> None:
        src, i, st = self.src, self.i, self.st
        if src.startswith("(", i + 1) and st.waiting is None:  # <(...) / >(...)
            end = self._matching_paren(i + 1)
            self._begin()
            st.nested.append(src[i + 2 : end])
            st.buf.append(src[i : end + 1])
            self.i = end + 1
            return
        fd: int | None = None
        pending = "".join(st.buf)
        if st.started and not st.quoted and pending.isdigit() and len(pending) < 6:
            fd = int(pending)
            st.buf.clear()
            st.started = False
        else:
            self._finish_word()
        op = _redirect_op(src, self.i)
        self.i += len(op)
        st.waiting = _Pending(op=op, fd=fd, strip_tabs=op == "<<-")
        st.redirects.append(st.waiting)

    def _end_command(self, sep: str, width: int = 0) -> None:
        self._finish_word()
        st, end = self.st, self.i
        self.i += width
        if sep == "\n" and st.heredocs:
            self._read_heredocs()
        if st.words or st.redirects or st.nested:
            self.out.append(
                LexedCommand(
                    words=tuple(st.words),
                    redirects=tuple(Redirect(p.op, p.target, p.fd, p.body) for p in st.redirects),
                    text=self.src[st.cmd_start : end].strip(),
                    sep=sep,
                    nested=tuple(st.nested),
                )
            )
        self.st = _State(cmd_start=self.i)

    def _read_heredocs(self) -> None:
        """Read here-document bodies after the newline that ends their command."""
        src = self.src
        for doc in self.st.heredocs:
            lines: list[str] = []
            while self.i < self.n:
                end = src.find("\n", self.i)
                end = self.n if end < 0 else end
                line = src[self.i : end]
                self.i = end + 1
                if (line.lstrip("\t") if doc.strip_tabs else line) == doc.target:
                    break
                lines.append(line)
            doc.body = "\n".join(lines)
        self.st.heredocs.clear()


def _redirect_op(src: str, i: int) -> str:
    for op in ("&>>", "<<<", "<<-", "&>", ">>", ">&", ">|", "<<", "<>", "<&"):
        if src.startswith(op, i):
            return op
    return src[i]


def _is_name_char(src: str, i: int) -> bool:
    return i < len(src) and (src[i].isalnum() or src[i] == "_")


def _ansi_escape(src: str, i: int, buf: list[str]) -> int:
    """Decode one ``$'...'`` escape whose letter is at ``i``; return the next index."""
    c = src[i]
    if c in _ANSI_SIMPLE:
        buf.append(_ANSI_SIMPLE[c])
        return i + 1
    if c in "xuU":
        limit = {"x": 2, "u": 4, "U": 8}[c]
        j = i + 1
        while j < len(src) and j - i - 1 < limit and src[j] in _HEX_DIGITS:
            j += 1
        if j == i + 1:
            buf.append("\\" + c)
            return j
        code = int(src[i + 1 : j], 16)
        buf.append(chr(code) if code < 0x110000 else "\ufffd")
        return j
    if c in "01234567":
        j = i
        while j < len(src) and j - i < 3 and src[j] in "01234567":
            j += 1
        buf.append(chr(int(src[i:j], 8) & 0xFF))
        return j
    buf.append("\\" + c)
    return i + 1


def _brace_expand(raw: str, word: str) -> list[str]:
    """Expand an unquoted ``{a,b,c}`` word (the ``{nc,-e,/bin/sh,...}`` evasion), else keep it."""
    if (
        len(raw) > 2
        and raw[0] == "{"
        and raw[-1] == "}"
        and "," in raw
        and raw == word
        and "{" not in raw[1:-1]
        and "}" not in raw[1:-1]
    ):
        return [part for part in raw[1:-1].split(",") if part]
    return [word]
