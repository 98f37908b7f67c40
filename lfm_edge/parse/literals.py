"""A bounded reader of Python and JSON literals: the values inside the model's tool calls and box lists.

Why not ``ast.literal_eval`` or ``json.loads``: the model's output is untrusted text. ``ast.parse`` builds a full
syntax tree before anything can be checked (deep nesting exhausts the C stack or raises MemoryError, and a 1 MB
input is parsed whole), and neither function knows the chat template's unescaped strings. This reader is a
recursive-descent parser of the literal subset only -- strings, numbers, True/False/None, true/false/null, lists and
string-keyed dicts -- that never evaluates anything, stops at the first token outside that subset (names, calls,
attribute access, lambdas, f-strings, operators) and enforces a nesting depth, a value count and a number length.
Every scan is a single pass (regular expressions without nested quantifiers), so time is linear in the input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from lfm_edge.errors import ParseError

QUOTES = "\"'"

_SPACE = re.compile(r"\s*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Python and JSON numbers; a leading '+' and leading zeros are tolerated (small models write them).
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_IDENTIFIER_CHAR = re.compile(r"[A-Za-z0-9_]")
_PLAIN_RUN = {quote: re.compile(rf"[^{quote}\\]+") for quote in QUOTES}
_HEX = re.compile(r"[0-9A-Fa-f]+")
_OCTAL = re.compile(r"[0-7]{1,3}")
_SURROGATE = re.compile(r"[\ud800-\udfff]")

_KEYWORDS: dict[str, Any] = {"True": True, "False": False, "None": None, "true": True, "false": False, "null": None}
_SIMPLE_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "a": "\a",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "/": "/",  # JSON only; Python would keep the backslash, but no model means a literal "\/".
    "\n": "",  # Python line continuation inside a string.
}
_HEX_ESCAPE_DIGITS = {"x": 2, "u": 4, "U": 8}
_EXCERPT_CHARS = 24


@dataclass(frozen=True)
class LiteralLimits:
    """Bounds on one parsed value; exceeding any is a ParseError, never a slow parse.

    max_depth: list/dict nesting (JSON tool arguments rarely exceed 5).
    max_values: values of every kind, counted across the whole reader (bounds memory for huge flat lists).
    max_number_chars: characters of one number literal (Python's int() is quadratic in the digit count).
    """

    max_depth: int = 32
    max_values: int = 20_000
    max_number_chars: int = 100


DEFAULT_LITERAL_LIMITS = LiteralLimits()


class LiteralReader:
    """Reads literals from ``text`` starting at ``pos``; every failure raises ParseError naming the offset."""

    def __init__(self, text: str, limits: LiteralLimits = DEFAULT_LITERAL_LIMITS, pos: int = 0) -> None:
        self.text = text
        self.limits = limits
        self.pos = pos
        self._depth = 0
        self._values = 0

    # -- small helpers used by the grammars built on this reader ------------------------------------------------

    def fail(self, message: str) -> NoReturn:
        excerpt = self.text[self.pos : self.pos + _EXCERPT_CHARS]
        where = f"at offset {self.pos}, near {excerpt!r}" if excerpt else "at the end of the text"
        raise ParseError(f"{message} ({where})")

    def skip_space(self) -> None:
        match = _SPACE.match(self.text, self.pos)
        if match:
            self.pos = match.end()

    def peek(self) -> str:
        """The next character, or "" at the end."""
        return self.text[self.pos : self.pos + 1]

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def accept(self, char: str) -> bool:
        if self.text.startswith(char, self.pos):
            self.pos += len(char)
            return True
        return False

    def expect(self, char: str, what: str = "") -> None:
        if not self.accept(char):
            self.fail(f"expected {char!r}{what}")

    def read_identifier(self, pattern: re.Pattern[str] = _IDENTIFIER, max_chars: int = 128) -> str | None:
        """An identifier (by ``pattern``) at the cursor, or None without moving."""
        match = pattern.match(self.text, self.pos)
        if not match:
            return None
        if match.end() - match.start() > max_chars:
            self.fail(f"name longer than {max_chars} characters")
        self.pos = match.end()
        return match.group()

    # -- values -------------------------------------------------------------------------------------------------

    def read_value(self) -> Any:
        """One literal; the cursor must be on its first character (no leading whitespace)."""
        self._values += 1
        if self._values > self.limits.max_values:
            self.fail(f"more than {self.limits.max_values} values")
        char = self.peek()
        if char == "[":
            return self._read_list()
        if char == "{":
            return self._read_dict()
        if char and char in QUOTES:
            return self.read_string()
        if char and (char.isdigit() or char in "-+."):
            return self._read_number()
        return self._read_keyword()

    def read_string(self) -> str:
        """A quoted string with Python/JSON escapes; the closing quote is the first unescaped matching one."""
        quote = self.peek()
        start = self.pos
        self.pos += 1
        pieces: list[str] = []
        plain = _PLAIN_RUN[quote]
        while True:
            match = plain.match(self.text, self.pos)
            if match:
                pieces.append(match.group())
                self.pos = match.end()
            char = self.peek()
            if char == quote:
                self.pos += 1
                return repair_surrogates("".join(pieces))
            if not char:
                self.pos = start
                self.fail("unterminated string")
            self.pos += 1
            pieces.append(self._read_escape())

    def _read_escape(self) -> str:
        """The character(s) a backslash sequence stands for; the cursor is just after the backslash."""
        char = self.peek()
        if not char:
            self.fail("unterminated string")
        if char in _SIMPLE_ESCAPES:
            self.pos += 1
            return _SIMPLE_ESCAPES[char]
        if char in _HEX_ESCAPE_DIGITS:
            digits = _HEX_ESCAPE_DIGITS[char]
            match = _HEX.match(self.text, self.pos + 1, self.pos + 1 + digits)
            if not match or len(match.group()) != digits:
                self.fail(f"bad \\{char} escape")
            code = int(match.group(), 16)
            if code > 0x10FFFF:
                self.fail("escape beyond U+10FFFF")
            self.pos = match.end()
            return chr(code)
        octal = _OCTAL.match(self.text, self.pos)
        if octal:
            self.pos = octal.end()
            return chr(int(octal.group(), 8))
        # Python keeps unknown escapes verbatim ("\d" is backslash + d).
        self.pos += 1
        return "\\" + char

    def _read_number(self) -> int | float:
        match = _NUMBER.match(self.text, self.pos)
        if not match:
            self.fail("malformed number")
        literal = match.group()
        if len(literal) > self.limits.max_number_chars:
            self.fail(f"number longer than {self.limits.max_number_chars} characters")
        if _IDENTIFIER_CHAR.match(self.text, match.end()):
            # 1j, 0x1f, 1_000, 3abc: outside the literal subset.
            self.fail("malformed number")
        self.pos = match.end()
        if any(char in literal for char in ".eE"):
            value = float(literal)
            if not math.isfinite(value):
                self.fail("number out of range")
            return value
        return int(literal)

    def _read_keyword(self) -> Any:
        start = self.pos
        name = self.read_identifier()
        if name is None:
            self.fail("expected a value")
        if name in _KEYWORDS:
            return _KEYWORDS[name]
        if self.peek() and self.peek() in QUOTES:
            self.pos = start
            self.fail("string prefixes (f, r, b, u) are not accepted")
        self.pos = start
        self.fail(f"{name[:_EXCERPT_CHARS]!r} is not a literal (names, calls and expressions are never evaluated)")

    def _enter(self) -> None:
        self._depth += 1
        if self._depth > self.limits.max_depth:
            self.fail(f"nesting deeper than {self.limits.max_depth}")

    def _read_list(self) -> list[Any]:
        self._enter()
        self.pos += 1
        items: list[Any] = []
        self.skip_space()
        while not self.accept("]"):
            items.append(self.read_value())
            self.skip_space()
            if self.accept(","):
                self.skip_space()
            elif self.peek() != "]":
                self.fail("expected ',' or ']' in a list")
        self._depth -= 1
        return items

    def _read_dict(self) -> dict[str, Any]:
        self._enter()
        self.pos += 1
        items: dict[str, Any] = {}
        self.skip_space()
        while not self.accept("}"):
            if not (self.peek() and self.peek() in QUOTES):
                self.fail("expected a quoted key in a dict")
            self._values += 1
            key = self.read_string()
            self.skip_space()
            self.expect(":", " after a dict key")
            self.skip_space()
            items[key] = self.read_value()
            self.skip_space()
            if self.accept(","):
                self.skip_space()
            elif self.peek() != "}":
                self.fail("expected ',' or '}' in a dict")
        self._depth -= 1
        return items


def repair_surrogates(text: str) -> str:
    r"""Join JSON surrogate pairs ("\ud83c\udf38") into one character; a lone surrogate becomes U+FFFD.

    Why: the arguments are later serialized as UTF-8, which cannot encode a lone surrogate.
    """
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def parse_literal(text: str, limits: LiteralLimits = DEFAULT_LITERAL_LIMITS) -> Any:
    """The single literal that makes up ``text`` (surrounding whitespace allowed); ParseError otherwise."""
    reader = LiteralReader(text, limits)
    reader.skip_space()
    value = reader.read_value()
    reader.skip_space()
    if not reader.at_end():
        reader.fail("unexpected text after the value")
    return value
