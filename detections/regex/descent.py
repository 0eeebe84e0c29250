"""The recursive-descent skeleton the Java and Joni regex parsers share.

Both dialects read alternation and sequence the same way; they differ in atoms, escapes and
error wording, which the subclasses supply. Positions are code-point offsets into ``text``.
"""

from __future__ import annotations

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.regex.regex_ast import Alt, Node


class RegexDescent:
    """``parse()`` = ``alternation`` to the end of ``text``; subclasses define ``parse_seq``."""

    unmatched_close = "unmatched close parenthesis"

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> QuerySyntaxError:
        raise NotImplementedError

    def parse_seq(self) -> Node:
        raise NotImplementedError

    def peek(self, ahead: int = 0) -> str:
        j = self.pos + ahead
        return self.text[j] if j < len(self.text) else ""

    def take(self) -> str:
        c = self.peek()
        self.pos += 1
        return c

    def parse(self) -> Node:
        node = self.parse_alt()
        if self.pos < len(self.text):
            raise self.error(self.unmatched_close)
        return node

    def parse_alt(self) -> Node:
        branches = [self.parse_seq()]
        while self.peek() == "|":
            self.take()
            branches.append(self.parse_seq())
        return branches[0] if len(branches) == 1 else Alt(branches)
