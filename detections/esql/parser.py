"""Recursive-descent parser for the subset of ES|QL auditstream runs.

Precedence follows Elasticsearch's grammar: ``OR`` < ``AND`` < ``NOT`` < predicates (comparison,
``LIKE``/``RLIKE``, ``IN``, ``IS NULL``) < ``+``/``-``. Anything outside the subset is rejected
here, at load, with the position of the offending token, so a rule never fails half-way through
a stream. Aggregate functions are accepted in ``STATS`` only (as Elasticsearch's verifier has
it); ``STATS`` itself runs on the stream as a window (:mod:`auditstream.detections.stateful.stats`).
"""

from __future__ import annotations

from collections.abc import Callable

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.esql import ast
from auditstream.detections.esql.aggregates import AGGREGATES
from auditstream.detections.esql.functions import FUNCTIONS
from auditstream.detections.esql.lexer import Kind, Lexer, Token
from auditstream.detections.esql.temporal import UNITS

_KNOWN_UNSUPPORTED_COMMANDS = frozenset(
    {
        "INLINESTATS", "INLINE", "MV_EXPAND", "ENRICH", "LOOKUP", "JOIN", "ROW", "SHOW",
        "META", "CHANGE_POINT", "FORK", "COMPLETION", "SAMPLE", "RERANK", "INSIST", "FUSE",
        "LEFT", "RIGHT", "FULL", "METRICS", "TS", "EXPLAIN", "SET", "RRF", "URI_PARTS",
    }
)  # fmt: skip

_RESERVED = frozenset({"AND", "OR", "NOT", "LIKE", "RLIKE", "IN", "IS", "NULL", "AS", "BY"})
_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})


def parse_query(text: str) -> ast.Query:
    """Parse a whole query; raises :class:`QuerySyntaxError` with a 1-based line and column."""
    return _Parser(text).query()


class _Parser:
    def __init__(self, text: str) -> None:
        self._lexer = Lexer(text)
        self._buffer: list[Token] = []
        self._last_token_end = 0  # end offset of the last token an expression consumed
        self._aggregates_allowed = False  # inside a STATS aggregate, outside its arguments

    # --- token plumbing ----------------------------------------------------------------------

    def _peek(self, ahead: int = 0) -> Token:
        while len(self._buffer) <= ahead:
            self._buffer.append(self._lexer.next_token())
        return self._buffer[ahead]

    def _take(self) -> Token:
        token = self._peek()
        self._buffer.pop(0)
        return token

    @staticmethod
    def _error(token: Token, message: str) -> QuerySyntaxError:
        return QuerySyntaxError(message, token.line, token.column)

    def _is_keyword(self, word: str, ahead: int = 0) -> bool:
        token = self._peek(ahead)
        return token.kind is Kind.IDENT and token.text.upper() == word

    def _expect_keyword(self, word: str) -> Token:
        if not self._is_keyword(word):
            raise self._error(self._peek(), f"expected {word}, found {_describe(self._peek())}")
        return self._take()

    def _expect(self, kind: Kind, text: str | None = None) -> Token:
        token = self._peek()
        if token.kind is not kind or (text is not None and token.text != text):
            wanted = text if text is not None else kind.value
            raise self._error(token, f"expected {wanted}, found {_describe(token)}")
        return self._take()

    def _at_op(self, text: str) -> bool:
        token = self._peek()
        return token.kind is Kind.OP and token.text == text

    # --- query and commands ------------------------------------------------------------------

    def query(self) -> ast.Query:
        first = self._peek()
        if not self._is_keyword("FROM"):
            word = first.text.upper() if first.kind is Kind.IDENT else _describe(first)
            raise self._error(first, f"a rule must start with FROM, not {word}")
        self._take()
        source = self._from(first)
        commands: list[ast.Command] = []
        while self._peek().kind is Kind.PIPE:
            self._take()
            commands.append(self._command())
        if self._peek().kind is not Kind.EOF:
            raise self._error(self._peek(), f"unexpected {_describe(self._peek())}")
        return ast.Query(source, tuple(commands))

    def _from(self, keyword: Token) -> ast.From:
        sources: list[str] = []
        while True:
            token = self._lexer.next_source()
            if token is None:
                raise self._error(self._peek(), "expected an index pattern after FROM")
            sources.append(token.text)
            if self._peek().kind is not Kind.COMMA:
                break
            self._take()
        metadata: list[str] = []
        if self._is_keyword("METADATA"):
            self._take()
            metadata.append(self._identifier())
            while self._peek().kind is Kind.COMMA:
                self._take()
                metadata.append(self._identifier())
        return ast.From(tuple(sources), tuple(metadata), _pos(keyword))

    def _command(self) -> ast.Command:
        token = self._peek()
        word = token.text.upper() if token.kind is Kind.IDENT else ""
        handlers: dict[str, Callable[[Token], ast.Command]] = {
            "WHERE": self._where,
            "EVAL": self._eval,
            "GROK": self._grok,
            "DISSECT": self._dissect,
            "KEEP": self._keep,
            "DROP": self._drop,
            "RENAME": self._rename,
            "LIMIT": self._limit,
            "SORT": self._sort,
            "STATS": self._stats,
        }
        handler = handlers.get(word)
        if handler is not None:
            self._take()
            return handler(token)
        if word in _KNOWN_UNSUPPORTED_COMMANDS or word == "FROM":
            raise self._error(token, f"{word} is not supported (auditstream runs per-event rules)")
        raise self._error(token, f"unknown command {token.text or _describe(token)}")

    def _where(self, keyword: Token) -> ast.Where:
        return ast.Where(self._boolean(), _pos(keyword))

    def _eval(self, keyword: Token) -> ast.Eval:
        assignments = [self._assignment()]
        while self._peek().kind is Kind.COMMA:
            self._take()
            assignments.append(self._assignment())
        return ast.Eval(tuple(assignments), _pos(keyword))

    def _assignment(self) -> tuple[str, ast.Expr]:
        if self._peek().kind in (Kind.IDENT, Kind.QUOTED_IDENT) and self._assigns_after_name():
            name = self._qualified_name()
            self._expect(Kind.OP, "=")
            return name, self._boolean()
        start = self._peek().offset
        expr = self._boolean()
        end = self._last_token_end
        return self._lexer.text[start:end], expr

    def _assigns_after_name(self) -> bool:
        """True when tokens read ``name(.name)* =`` (an assignment, not an expression)."""
        ahead = 0
        while True:
            token = self._peek(ahead)
            if token.kind not in (Kind.IDENT, Kind.QUOTED_IDENT):
                return False
            nxt = self._peek(ahead + 1)
            if nxt.kind is Kind.OP and nxt.text == "=":
                return True
            if not (nxt.kind is Kind.OP and nxt.text == "."):
                return False
            ahead += 2

    def _grok(self, keyword: Token) -> ast.Grok:
        operand = self._primary()
        pattern = self._expect(Kind.STRING).text
        return ast.Grok(operand, pattern, _pos(keyword))

    def _dissect(self, keyword: Token) -> ast.Dissect:
        operand = self._primary()
        pattern = self._expect(Kind.STRING).text
        separator = ""
        if self._is_keyword("APPEND_SEPARATOR"):
            self._take()
            self._expect(Kind.OP, "=")
            separator = self._expect(Kind.STRING).text
        return ast.Dissect(operand, pattern, separator, _pos(keyword))

    def _keep(self, keyword: Token) -> ast.Keep:
        return ast.Keep(self._name_patterns(), _pos(keyword))

    def _drop(self, keyword: Token) -> ast.Drop:
        return ast.Drop(self._name_patterns(), _pos(keyword))

    def _name_patterns(self) -> tuple[str, ...]:
        patterns = [self._name_pattern()]
        while self._peek().kind is Kind.COMMA:
            self._take()
            patterns.append(self._name_pattern())
        return tuple(patterns)

    def _name_pattern(self) -> str:
        """``kubernetes.*``, ``*``, ``Esql.executed_command``: adjacent name and ``*`` tokens."""
        first = self._peek()
        parts: list[str] = []
        end = first.offset
        while True:
            token = self._peek()
            joinable = token.kind in (Kind.IDENT, Kind.QUOTED_IDENT) or (
                token.kind is Kind.OP and token.text in ("*", ".")
            )
            if not joinable or (parts and token.offset != end):
                break
            parts.append(token.text)
            end = self._take().end
        if not parts:
            raise self._error(first, f"expected a column name, found {_describe(first)}")
        return "".join(parts)

    def _rename(self, keyword: Token) -> ast.Rename:
        pairs = [self._rename_pair()]
        while self._peek().kind is Kind.COMMA:
            self._take()
            pairs.append(self._rename_pair())
        return ast.Rename(tuple(pairs), _pos(keyword))

    def _rename_pair(self) -> tuple[str, str]:
        first = self._qualified_name()
        if self._at_op("="):
            self._take()
            return self._qualified_name(), first
        self._expect_keyword("AS")
        return first, self._qualified_name()

    def _limit(self, keyword: Token) -> ast.Limit:
        return ast.Limit(int(self._expect(Kind.INTEGER).text), _pos(keyword))

    def _stats(self, keyword: Token) -> ast.Stats:
        """``STATS [name =] AGG(...) [WHERE cond], ... [BY [name =] expr, ...]``."""
        if self._peek().kind in (Kind.EOF, Kind.PIPE):
            raise self._error(keyword, "STATS needs an aggregate or a BY")
        aggregates: list[ast.StatsAggregate] = []
        if not self._is_keyword("BY"):
            aggregates.append(self._stats_aggregate())
            while self._peek().kind is Kind.COMMA:
                self._take()
                aggregates.append(self._stats_aggregate())
        groups: list[tuple[str, ast.Expr]] = []
        if self._is_keyword("BY"):
            self._take()
            groups.append(self._assignment())
            while self._peek().kind is Kind.COMMA:
                self._take()
                groups.append(self._assignment())
        return ast.Stats(tuple(aggregates), tuple(groups), _pos(keyword))

    def _stats_aggregate(self) -> ast.StatsAggregate:
        token = self._peek()
        self._aggregates_allowed = True
        try:
            name, expr = self._assignment()
        finally:
            self._aggregates_allowed = False
        if not (isinstance(expr, ast.Call) and expr.name in AGGREGATES):
            raise self._error(
                token,
                "STATS takes aggregate functions ("
                + ", ".join(sorted(AGGREGATES))
                + "), not expressions over them",
            )
        condition = None
        if self._is_keyword("WHERE"):
            self._take()
            condition = self._boolean()
        return ast.StatsAggregate(name, expr, condition)

    def _sort(self, keyword: Token) -> ast.Sort:
        keys = [self._sort_key()]
        while self._peek().kind is Kind.COMMA:
            self._take()
            keys.append(self._sort_key())
        return ast.Sort(tuple(keys), _pos(keyword))

    def _sort_key(self) -> ast.Expr:
        key = self._boolean()
        if self._is_keyword("ASC") or self._is_keyword("DESC"):
            self._take()
        if self._is_keyword("NULLS"):
            self._take()
            if not (self._is_keyword("FIRST") or self._is_keyword("LAST")):
                raise self._error(self._peek(), "expected FIRST or LAST after NULLS")
            self._take()
        return key

    # --- expressions -------------------------------------------------------------------------

    def _boolean(self) -> ast.Expr:
        left = self._and()
        while self._is_keyword("OR"):
            token = self._take()
            left = ast.Logical("OR", left, self._and(), _pos(token))
        return left

    def _and(self) -> ast.Expr:
        left = self._not()
        while self._is_keyword("AND"):
            token = self._take()
            left = ast.Logical("AND", left, self._not(), _pos(token))
        return left

    def _not(self) -> ast.Expr:
        if self._is_keyword("NOT"):
            token = self._take()
            return ast.Not(self._not(), _pos(token))
        return self._predicate()

    def _predicate(self) -> ast.Expr:
        operand = self._value()
        token = self._peek()
        negated = False
        if self._is_keyword("NOT") and any(
            self._is_keyword(word, 1) for word in ("LIKE", "RLIKE", "IN")
        ):
            self._take()
            negated = True
            token = self._peek()
        if self._is_keyword("LIKE") or self._is_keyword("RLIKE"):
            self._take()
            regex = token.text.upper() == "RLIKE"
            return ast.PatternMatch(operand, self._patterns(), regex, negated, _pos(token))
        if self._is_keyword("IN"):
            self._take()
            return ast.InList(operand, self._in_items(), negated, _pos(token))
        if self._is_keyword("IS"):
            self._take()
            is_not = self._is_keyword("NOT")
            if is_not:
                self._take()
            self._expect_keyword("NULL")
            return ast.IsNull(operand, is_not, _pos(token))
        if token.kind is Kind.OP and token.text in _COMPARISONS:
            self._take()
            return ast.Compare(token.text, operand, self._value(), _pos(token))
        if token.kind is Kind.OP and token.text in ("*", "/", "%", "=~", "::", ":"):
            raise self._error(token, f"operator {token.text} is not supported")
        return operand

    def _patterns(self) -> tuple[str, ...]:
        if self._peek().kind is Kind.LPAREN:
            self._take()
            patterns = [self._expect(Kind.STRING).text]
            while self._peek().kind is Kind.COMMA:
                self._take()
                patterns.append(self._expect(Kind.STRING).text)
            self._note_end(self._expect(Kind.RPAREN))
            return tuple(patterns)
        token = self._expect(Kind.STRING)
        self._note_end(token)
        return (token.text,)

    def _in_items(self) -> tuple[ast.Expr, ...]:
        self._expect(Kind.LPAREN)
        items = [self._value()]
        while self._peek().kind is Kind.COMMA:
            self._take()
            items.append(self._value())
        self._note_end(self._expect(Kind.RPAREN))
        return tuple(items)

    def _value(self) -> ast.Expr:
        """Operands joined by ``+`` and ``-`` (left-associative, above the predicates)."""
        left = self._signed()
        while self._at_op("+") or self._at_op("-"):
            token = self._take()
            left = ast.Arithmetic(token.text, left, self._signed(), _pos(token))
        return left

    def _signed(self) -> ast.Expr:
        token = self._peek()
        if token.kind is Kind.OP and token.text == "-":
            self._take()
            number = self._peek()
            if number.kind not in (Kind.INTEGER, Kind.DECIMAL):
                raise self._error(token, "operator - is only supported before a number")
            literal = self._primary()
            if isinstance(literal, ast.TimeSpan):
                return ast.TimeSpan(-literal.amount, literal.unit, _pos(token))
            assert isinstance(literal, ast.Literal) and isinstance(literal.value, int | float)
            return ast.Literal(-literal.value, _pos(token))
        return self._primary()

    def _primary(self) -> ast.Expr:
        token = self._peek()
        if token.kind is Kind.STRING:
            self._note_end(self._take())
            return ast.Literal(token.text, _pos(token))
        if token.kind is Kind.INTEGER:
            self._note_end(self._take())
            unit = self._peek()
            if unit.kind is Kind.IDENT and unit.text.upper() in UNITS:
                self._note_end(self._take())
                return ast.TimeSpan(int(token.text), unit.text.upper(), _pos(token))
            return ast.Literal(int(token.text), _pos(token))
        if token.kind is Kind.DECIMAL:
            self._note_end(self._take())
            return ast.Literal(float(token.text), _pos(token))
        if token.kind is Kind.LPAREN:
            self._take()
            inner = self._boolean()
            self._note_end(self._expect(Kind.RPAREN))
            return inner
        if token.kind is Kind.IDENT:
            return self._identifier_expression(token)
        if token.kind is Kind.QUOTED_IDENT:
            return ast.FieldRef(self._qualified_name(), _pos(token))
        raise self._error(token, f"expected an expression, found {_describe(token)}")

    def _identifier_expression(self, token: Token) -> ast.Expr:
        word = token.text.upper()
        if word in ("NULL", "TRUE", "FALSE"):
            self._note_end(self._take())
            value = None if word == "NULL" else word == "TRUE"
            return ast.Literal(value, _pos(token))
        if self._peek(1).kind is Kind.LPAREN:
            self._take()
            aggregate = word in AGGREGATES
            if aggregate and not self._aggregates_allowed:
                raise self._error(token, f"aggregate function {word} is only allowed in STATS")
            if not aggregate and word not in FUNCTIONS:
                raise self._error(token, f"unknown function {token.text}")
            self._take()
            allowed, self._aggregates_allowed = self._aggregates_allowed, False
            try:
                args = self._arguments(count_all=word == "COUNT")
            finally:
                self._aggregates_allowed = allowed
            self._note_end(self._expect(Kind.RPAREN))
            return ast.Call(word, tuple(args), _pos(token))
        if word in _RESERVED:
            raise self._error(token, f"unexpected keyword {token.text}")
        return ast.FieldRef(self._qualified_name(), _pos(token))

    def _arguments(self, *, count_all: bool) -> list[ast.Expr]:
        """A call's arguments; ``COUNT(*)`` has none (it counts rows, as ``COUNT()`` does)."""
        if count_all and self._at_op("*") and self._peek(1).kind is Kind.RPAREN:
            self._take()
            return []
        args: list[ast.Expr] = []
        if self._peek().kind is not Kind.RPAREN:
            args.append(self._boolean())
            while self._peek().kind is Kind.COMMA:
                self._take()
                args.append(self._boolean())
        return args

    def _identifier(self) -> str:
        token = self._peek()
        if token.kind not in (Kind.IDENT, Kind.QUOTED_IDENT):
            raise self._error(token, f"expected an identifier, found {_describe(token)}")
        self._note_end(self._take())
        return token.text

    def _qualified_name(self) -> str:
        parts = [self._identifier()]
        while self._at_op(".") and self._peek(1).kind in (Kind.IDENT, Kind.QUOTED_IDENT):
            self._take()
            parts.append(self._identifier())
        return ".".join(parts)

    def _note_end(self, token: Token) -> None:
        self._last_token_end = token.end


def _pos(token: Token) -> ast.Pos:
    return ast.Pos(token.line, token.column)


def _describe(token: Token) -> str:
    if token.kind is Kind.EOF:
        return "end of query"
    if token.kind is Kind.STRING:
        return "a string"
    return repr(token.text)
