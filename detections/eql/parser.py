"""A hand-written parser for Elasticsearch EQL single-event queries (``EqlBase.g4``).

The token rules follow Elasticsearch's grammar: keywords are lower case and case-sensitive
(the lexer reads the raw text, no case-folding stream); identifiers are
``[A-Za-z_@][A-Za-z0-9_]*`` or back-quoted with ```` `` ```` for a back-quote; strings are
``"..."`` with the escapes ``\\b \\t \\n \\f \\r \\" \\\\`` and ``\\u{2-8 hex}``, or
``\"\"\"raw\"\"\"``; ``//`` and nested ``/* */`` comments. Joins, samples, pipes, arithmetic,
``=`` and single-quoted strings are refused with a position, because auditstream runs what
Elasticsearch runs as a filter and Elasticsearch rejects the rest. Sequences
(:func:`parse_eql_statement`) are parsed into their terms, join keys and ``maxspan``; each term's
condition is an ordinary single-event query, and the stateful part is
:mod:`auditstream.detections.stateful.sequence`'s. Errors are
:class:`~auditstream.detections.errors.QuerySyntaxError` with 1-based line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from auditstream.detections.eql import ast
from auditstream.detections.errors import QuerySyntaxError

__all__ = ["SEQUENCE_REFUSED", "parse_eql", "parse_eql_statement"]

SEQUENCE_REFUSED = "a sequence is not a single-event query: it loads as a stateful sequence rule"
MAX_RUNS = 100
"""``with runs=N``: N from 1 to 100 (the EQL syntax reference, "with runs statement")."""

KEYWORDS = frozenset(
    [
        "and",
        "any",
        "by",
        "false",
        "in",
        "join",
        "like",
        "maxspan",
        "not",
        "null",
        "of",
        "or",
        "regex",
        "sample",
        "sequence",
        "true",
        "until",
        "where",
        "with",
    ]
)
_TILDE_KEYWORDS = frozenset({"in~", "like~", "regex~"})
_REFUSED_STARTS = {
    "sequence": SEQUENCE_REFUSED,
    "join": "join queries are not supported (auditstream runs per-event rules)",
    "sample": "sample queries are not supported (auditstream runs per-event rules)",
}
_STAGE_OPENERS = ("[", "![")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", ":", "=", "+", "-", "*", "/", "%", ".", ",")
_PUNCT = {"(": "(", ")": ")", "[": "[", "]": "]", "|": "|"}
_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
_PATTERN_KINDS = {":": (":", True), "like": ("like", False), "like~": ("like", True)}
_PATTERN_KINDS |= {"regex": ("regex", False), "regex~": ("regex", True)}


@dataclass(frozen=True, slots=True)
class Token:
    """``kind`` is ``word`` (identifier or keyword), ``tilde``, ``quoted``, ``string``,
    ``int``, ``float``, ``?``, an operator, a bracket or ``eof``."""

    kind: str
    text: str
    value: object
    pos: ast.Pos
    at: int = 0
    """Offset of the token's first character in the query text."""


def parse_eql(text: str) -> ast.EventQuery:
    """Parse one single-event EQL query: ``<category|any> where <condition>``."""
    statement = parse_eql_statement(text)
    if isinstance(statement, ast.SequenceQuery):
        raise QuerySyntaxError(SEQUENCE_REFUSED, statement.pos.line, statement.pos.column)
    return statement


def parse_eql_statement(text: str) -> ast.Statement:
    """Parse one EQL query, a single-event query or a ``sequence``."""
    return _Parser(_Lexer(text).tokens(), text).statement()


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.line = 1
        self.line_start = 0

    def pos(self, at: int | None = None) -> ast.Pos:
        at = self.at if at is None else at
        return ast.Pos(self.line, at - self.line_start + 1)

    def error(self, message: str, at: int | None = None) -> QuerySyntaxError:
        pos = self.pos(at)
        return QuerySyntaxError(message, pos.line, pos.column)

    def advance_to(self, end: int) -> None:
        """Move to ``end``, counting newlines (\\n, \\r\\n and a lone \\r each end a line)."""
        text = self.text
        i = self.at
        while i < end:
            ch = text[i]
            if ch == "\n" or (ch == "\r" and (i + 1 >= len(text) or text[i + 1] != "\n")):
                self.line += 1
                self.line_start = i + 1
            i += 1
        self.at = end

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        while True:
            self.skip_blank()
            if self.at >= len(self.text):
                out.append(Token("eof", "", None, self.pos(), self.at))
                return out
            start = self.at
            out.append(replace(self.token(), at=start))

    def skip_blank(self) -> None:
        text = self.text
        while self.at < len(text):
            ch = text[self.at]
            if ch in " \t\r\n":
                self.advance_to(self.at + 1)
            elif text.startswith("//", self.at):
                end = self.at
                while end < len(text) and text[end] not in "\r\n":
                    end += 1
                self.advance_to(end)
            elif text.startswith("/*", self.at):
                self.advance_to(self.block_comment_end(self.at))
            else:
                return

    def block_comment_end(self, start: int) -> int:
        depth, i, text = 0, start, self.text
        while i < len(text):
            if text.startswith("/*", i):
                depth, i = depth + 1, i + 2
            elif text.startswith("*/", i):
                depth, i = depth - 1, i + 2
                if depth == 0:
                    return i
            else:
                i += 1
        raise self.error("unterminated /* comment", start)

    def token(self) -> Token:
        text, start = self.text, self.at
        ch = text[start]
        pos = self.pos()
        if ch.isascii() and (ch.isalpha() or ch in "_@"):
            return self.word(pos)
        if (ch.isascii() and ch.isdigit()) or (ch == "." and _digit_at(text, start + 1)):
            return self.number(pos)
        if ch == '"':
            return self.string(pos)
        if ch == "'":
            raise self.error(
                "Use double quotes [\"] to define string literals, not single quotes [']"
            )
        if ch == "?":
            if start + 1 < len(text) and text[start + 1] in "\"'":
                raise self.error(
                    'Use triple double quotes ["""] to define unescaped string literals, not [?"]'
                )
            self.advance_to(start + 1)
            return Token("?", "?", None, pos)
        if ch == "`":
            return self.quoted(pos)
        if text.startswith("![", start):
            self.advance_to(start + 2)
            return Token("![", "![", None, pos)
        if ch in _PUNCT:
            self.advance_to(start + 1)
            return Token(ch, ch, None, pos)
        for op in _OPERATORS:
            if text.startswith(op, start):
                self.advance_to(start + len(op))
                return Token(op, op, None, pos)
        raise self.error(f"unexpected character {ch!r}")

    def word(self, pos: ast.Pos) -> Token:
        text, end = self.text, self.at + 1
        while end < len(text) and text[end].isascii() and (text[end].isalnum() or text[end] == "_"):
            end += 1
        word = text[self.at : end]
        if end < len(text) and text[end] == "~" and word[0].isalpha():
            self.advance_to(end + 1)
            tilde = word + "~"
            return Token(tilde if tilde in _TILDE_KEYWORDS else "tilde", tilde, word, pos)
        self.advance_to(end)
        return Token(word if word in KEYWORDS else "word", word, word, pos)

    def number(self, pos: ast.Pos) -> Token:
        text, end = self.text, self.at
        while _digit_at(text, end):
            end += 1
        is_float = False
        if end < len(text) and text[end] == ".":
            is_float, end = True, end + 1
            while _digit_at(text, end):
                end += 1
        if end < len(text) and text[end] in "eE":
            exp = end + 1 + (end + 1 < len(text) and text[end + 1] in "+-")
            if _digit_at(text, exp):
                is_float, end = True, exp
                while _digit_at(text, end):
                    end += 1
        raw = text[self.at : end]
        self.advance_to(end)
        value: int | float = float(raw) if is_float else int(raw)
        return Token("float" if is_float else "int", raw, value, pos)

    def string(self, pos: ast.Pos) -> Token:
        text, start = self.text, self.at
        if text.startswith('"""', start):
            close = text.find('"""', start + 3)
            newline = min(
                (i for i in (text.find("\n", start), text.find("\r", start)) if i >= 0), default=-1
            )
            if close < 0 or 0 <= newline < close:
                raise self.error("unterminated raw string", start)
            end = close + 3
            while end < len(text) and text[end] == '"' and end < close + 5:
                end += 1  # ANTLR: '"""' (~[\r\n])*? '"""' '"'? '"'?
            self.advance_to(end)
            return Token("string", text[start:end], text[start + 3 : end - 3], pos)
        out: list[str] = []
        i = start + 1
        while True:
            if i >= len(text) or text[i] in "\r\n":
                raise self.error("unterminated string", start)
            ch = text[i]
            if ch == '"':
                break
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
            elif nxt == "u":
                i = self.unicode_escape(i, out)
            elif nxt == "'":
                raise self.error("escaped single quote [\\'] is not allowed; use [\\\"]", i)
            else:
                raise self.error(f"invalid escape sequence \\{nxt}", i)
        self.advance_to(i + 1)
        return Token("string", text[start : i + 1], "".join(out), pos)

    def unicode_escape(self, at: int, out: list[str]) -> int:
        text = self.text
        close = text.find("}", at)
        digits = text[at + 3 : close] if close > 0 and text.startswith("{", at + 2) else ""
        if not 2 <= len(digits) <= 8 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise self.error("Unicode sequence should use [2-8] hex digits: \\u{XXXX}", at)
        code = int(digits, 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise self.error(f"Invalid unicode character code [{digits}]", at)
        out.append(chr(code))
        return close + 1

    def quoted(self, pos: ast.Pos) -> Token:
        text, i, out = self.text, self.at + 1, []
        while True:
            if i >= len(text):
                raise self.error("unterminated back-quoted identifier")
            if text[i] == "`":
                if text.startswith("``", i):
                    out.append("`")
                    i += 2
                    continue
                break
            out.append(text[i])
            i += 1
        raw = text[self.at : i + 1]
        self.advance_to(i + 1)
        return Token("quoted", raw, "".join(out), pos)


def _digit_at(text: str, i: int) -> bool:
    return i < len(text) and "0" <= text[i] <= "9"


class _Parser:
    def __init__(self, tokens: list[Token], text: str) -> None:
        self.tokens = tokens
        self.text = text
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        tok = self.tok
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def error(self, message: str, tok: Token | None = None) -> QuerySyntaxError:
        pos = (tok or self.tok).pos
        return QuerySyntaxError(message, pos.line, pos.column)

    def expect(self, kind: str, what: str) -> Token:
        if self.tok.kind != kind:
            raise self.error(f"expected {what}, found {_describe(self.tok)}")
        return self.take()

    def statement(self) -> ast.Statement:
        first = self.tok
        if first.kind == "sequence":
            query: ast.Statement = self.sequence()
        elif first.kind in _REFUSED_STARTS:
            raise self.error(_REFUSED_STARTS[first.kind])
        else:
            query = self.event_filter()
        if self.tok.kind == "|":
            raise self.error("pipes are not supported (auditstream runs per-event rules)")
        if self.tok.kind != "eof":
            raise self.error(f"unexpected {_describe(self.tok)}")
        return query

    def event_filter(self) -> ast.EventQuery:
        first = self.tok
        if first.kind == "any":
            category = None
        elif first.kind in ("word", "string"):
            category = str(first.value)
        else:
            raise self.error(f"expected an event category or 'any', found {_describe(first)}")
        self.take()
        self.expect("where", "'where'")
        condition = self.or_expr()
        return ast.EventQuery(category, condition, first.pos)

    # --- sequences (EqlBase.g4: sequence, sequenceParams, sequenceTerm, joinKeys) ---------------

    def sequence(self) -> ast.SequenceQuery:
        start = self.take()
        keys: tuple[ast.FieldRef, ...] = ()
        maxspan = None
        if self.tok.kind == "by":
            keys = self.join_keys()
            if self.tok.kind == "with":
                maxspan = self.maxspan()
        elif self.tok.kind == "with":
            maxspan = self.maxspan()
            if self.tok.kind == "by":
                raise self.error("Please specify sequence [by] before [with] not after", start)
        terms: list[ast.SequenceTerm] = []
        while self.tok.kind in _STAGE_OPENERS:
            terms.append(self.sequence_term(until=False))
        until = None
        if self.tok.kind == "until":
            self.take()
            until = self.sequence_term(until=True)
        stages = sum(term.runs for term in terms)
        if stages < 2:
            if self.tok.kind not in ("eof", "|"):
                raise self.error(f"expected '[', found {_describe(self.tok)}")
            raise self.error(f"A sequence requires a minimum of 2 queries, found [{stages}]", start)
        _check_key_counts(terms + ([until] if until else []))
        return ast.SequenceQuery(keys, maxspan, tuple(terms), until, start.pos)

    def join_keys(self) -> tuple[ast.FieldRef, ...]:
        self.take()  # by
        keys = [self.join_key()]
        while self.tok.kind == ",":
            self.take()
            keys.append(self.join_key())
        return tuple(keys)

    def join_key(self) -> ast.FieldRef:
        """A field name (``?name`` optional); Elasticsearch would compute any other expression
        with a script, which auditstream does not run."""
        start = self.tok
        optional = start.kind == "?"
        if optional:
            self.take()
        parts = [self.identifier()]
        while self.tok.kind == ".":
            self.take()
            parts.append(self.identifier())
        if self.tok.kind not in ("[", "![", ",", "with", "until", "eof", "|"):
            raise self.error("a join key must be a field name (computed keys are not supported)")
        return ast.FieldRef(".".join(parts), optional, start.pos)

    def maxspan(self) -> ast.MaxSpan:
        self.take()  # with
        self.expect("maxspan", "'maxspan'")
        self.expect("=", "'='")
        number = self.tok
        if number.kind == "float":
            raise self.error(
                f"Decimal time interval [{number.text}] not supported; please use an positive "
                "integer"
            )
        value = number.value if number.kind == "int" else None
        if not isinstance(value, int):
            raise self.error(f"expected a time interval, found {_describe(number)}")
        self.take()
        if value <= 0:
            raise self.error(f"A positive maxspan value is required; found [{value}]", number)
        unit = self.tok
        if unit.kind != "word":
            raise self.error(
                f"No time unit specified, did you mean [s] as in [{number.text}s]?", number
            )
        self.take()
        if unit.text not in ast.MAXSPAN_UNITS:
            raise self.error(
                f"Unrecognized time unit [{unit.text}] in [{number.text}{unit.text}], please "
                f"specify one of [{', '.join(ast.MAXSPAN_UNITS)}]",
                unit,
            )
        return ast.MaxSpan(value, unit.text, number.pos)

    def sequence_term(self, *, until: bool) -> ast.SequenceTerm:
        opener = self.tok
        if opener.kind == "![":
            raise self.error("missing-event terms (![ ... ]) are not supported yet")
        self.expect("[", "'['")
        query = self.event_filter()
        closer = self.expect("]", "']'")
        text = self.text[opener.at + 1 : closer.at].strip()
        keys = self.join_keys() if self.tok.kind == "by" else ()
        runs = 1
        if self.tok.kind == "with":
            runs = self.runs(until=until)
        return ast.SequenceTerm(query, keys, runs, text, opener.pos)

    def runs(self, *, until: bool) -> int:
        option = self.take()  # with
        name = self.tok
        if name.kind != "word" or name.text != "runs":
            raise self.error(f"Unrecognized option [{name.text}], expecting [runs]")
        if until:
            raise self.error("with runs is not supported on the until term", option)
        self.take()
        self.expect("=", "'='")
        number = self.tok
        value = number.value if number.kind == "int" else None
        if not isinstance(value, int) or not 1 <= value <= MAX_RUNS:
            raise self.error(f"runs must be an integer from 1 to {MAX_RUNS}, found {number.text}")
        self.take()
        return value

    def or_expr(self) -> ast.Expr:
        left = self.and_expr()
        while self.tok.kind == "or":
            op = self.take()
            left = ast.Or(left, self.and_expr(), op.pos)
        return left

    def and_expr(self) -> ast.Expr:
        left = self.not_expr()
        while self.tok.kind == "and":
            op = self.take()
            left = ast.And(left, self.not_expr(), op.pos)
        return left

    def not_expr(self) -> ast.Expr:
        if self.tok.kind == "not":
            op = self.take()
            return ast.Not(self.not_expr(), op.pos)
        if self.tok.kind == "word" and self.peek().kind == "of":
            raise self.error("Process relationships are not supported")
        return self.comparison()

    def comparison(self) -> ast.Expr:
        left = self.operand()
        if self.tok.kind == "=":
            raise self.error("'=' is not an EQL operator; use '==' or ':'")
        if self.tok.kind not in _COMPARISONS:
            return left
        op = self.take()
        right = self.operand()
        if self.tok.kind in _COMPARISONS:
            raise self.error("comparisons cannot be chained; combine them with 'and'")
        return ast.Compare(op.kind, left, right, op.pos)

    def operand(self) -> ast.Expr:
        if self.tok.kind in ("-", "+"):
            sign = self.take()
            if self.tok.kind not in ("int", "float"):
                raise self.error(
                    "arithmetic is not supported (Elasticsearch runs it as a script)", sign
                )
            number = self.take()
            value = number.value if sign.kind == "+" else -number.value  # type: ignore[operator]
            expr: ast.Expr = ast.Literal(value, sign.pos)  # type: ignore[arg-type]
        else:
            expr = self.primary()
            expr = self.predicate(expr)
        if self.tok.kind in ("+", "-", "*", "/", "%"):
            raise self.error("arithmetic is not supported (Elasticsearch runs it as a script)")
        return expr

    def predicate(self, value: ast.Expr) -> ast.Expr:
        tok = self.tok
        if tok.kind == "not" and self.peek().kind in ("in", "in~"):
            self.take()
            kind = self.take()
            return ast.InList(value, self.expr_list(), True, kind.kind == "in~", tok.pos)
        if tok.kind in ("in", "in~"):
            self.take()
            return ast.InList(value, self.expr_list(), False, tok.kind == "in~", tok.pos)
        if tok.kind in _PATTERN_KINDS:
            self.take()
            pattern_kind, insensitive = _PATTERN_KINDS[tok.kind]
            if self.tok.kind == "(":
                self.take()
                items = [self.constant()]
                while self.tok.kind == ",":
                    self.take()
                    items.append(self.constant())
                self.expect(")", "')'")
            else:
                items = [self.constant()]
            return ast.PatternMatch(pattern_kind, value, tuple(items), insensitive, tok.pos)
        return value

    def expr_list(self) -> tuple[ast.Expr, ...]:
        self.expect("(", "'('")
        items = [self.or_expr()]
        while self.tok.kind == ",":
            self.take()
            items.append(self.or_expr())
        self.expect(")", "')'")
        return tuple(items)

    def constant(self) -> ast.Literal:
        tok = self.tok
        if tok.kind in ("-", "+") and self.peek().kind in ("int", "float"):
            self.take()
            number = self.take()
            value = number.value if tok.kind == "+" else -number.value  # type: ignore[operator]
            return ast.Literal(value, tok.pos)  # type: ignore[arg-type]
        if tok.kind in ("string", "int", "float"):
            self.take()
            return ast.Literal(tok.value, tok.pos)  # type: ignore[arg-type]
        if tok.kind in ("true", "false", "null"):
            self.take()
            return ast.Literal({"true": True, "false": False, "null": None}[tok.kind], tok.pos)
        raise self.error(f"expected a constant, found {_describe(tok)}")

    def primary(self) -> ast.Expr:
        tok = self.tok
        if tok.kind in ("string", "int", "float", "true", "false", "null"):
            return self.constant()
        if tok.kind in ("word", "tilde") and self.peek().kind == "(":
            return self.call()
        if tok.kind in ("word", "quoted", "?"):
            return self.field()
        if tok.kind == "(":
            self.take()
            inner = self.or_expr()
            self.expect(")", "')'")
            return inner
        raise self.error(f"expected an expression, found {_describe(tok)}")

    def call(self) -> ast.Call:
        name = self.take()
        self.take()  # (
        args: list[ast.Expr] = []
        if self.tok.kind != ")":
            args.append(self.or_expr())
            while self.tok.kind == ",":
                self.take()
                args.append(self.or_expr())
        self.expect(")", "')'")
        insensitive = name.kind == "tilde"
        return ast.Call(str(name.value), tuple(args), insensitive, name.pos)

    def field(self) -> ast.FieldRef:
        start = self.tok
        optional = start.kind == "?"
        if optional:
            self.take()
        parts = [self.identifier()]
        while self.tok.kind in (".", "["):
            if self.tok.kind == "[":
                raise self.error("Array indexes are not supported", self.peek())
            self.take()
            parts.append(self.identifier())
        return ast.FieldRef(".".join(parts), optional, start.pos)

    def identifier(self) -> str:
        tok = self.tok
        if tok.kind not in ("word", "quoted"):
            raise self.error(f"expected a field name, found {_describe(tok)}")
        self.take()
        return str(tok.value)


def _check_key_counts(terms: list[ast.SequenceTerm]) -> None:
    """Every term (``until`` included) must name as many join keys of its own as the first
    (the sequence's ``by`` keys count for every term alike)."""
    expected = len(terms[0].keys)
    for term in terms[1:]:
        if len(term.keys) != expected:
            pos = term.keys[0].pos if term.keys else term.pos
            raise QuerySyntaxError(
                "Inconsistent number of join keys specified; "
                f"expected [{expected}] but found [{len(term.keys)}]",
                pos.line,
                pos.column,
            )


def _describe(tok: Token) -> str:
    return "end of query" if tok.kind == "eof" else repr(tok.text)
