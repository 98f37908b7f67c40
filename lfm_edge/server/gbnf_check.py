"""A GBNF grammar checked in Python before llama.cpp ever parses it: syntax, and what it may expand to.

Why: llama.cpp's grammar parser recurses once per nested group (about 400 bytes of stack per level: it crashed at
3,000 levels on a 1 MB thread stack and at ~18,400 on an 8 MB one, measured with the tiny model), recurses once per
rule in a chain of leading rule references when it checks for left recursion (crashed at 16,000 on 1 MB), and on a
syntax error prints the whole grammar to stderr. So the server parses every grammar here first, iteratively (no
Python recursion either), refuses it with a message and the position when it does not parse, and refuses it when
it is bigger than the budget: bytes, nesting depth, rules, the count of a `{m,n}` repetition, and the number of
symbols once repetitions are expanded. Only grammars that pass reach llama.cpp, whose parse then cannot fail on
syntax (no dump) and stays far from the stack's end (the default depth bound, 1,200, is under 0.5 MB of stack).

The syntax is llama.cpp's (src/llama-grammar.cpp): rules `name ::= alternatives`, names of [a-zA-Z0-9-], strings
"...", classes [...], tokens <[id]> and !<[id]>, `.`, groups (...), postfix * + ? {m} {m,} {m,n}, # comments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_SIMPLE_ESCAPES = frozenset('trn\\"[]-')


@dataclass(frozen=True)
class GrammarBudget:
    max_bytes: int = 64 * 1024
    max_depth: int = 1200
    max_rules: int = 1024
    max_repetition: int = 1000
    max_symbols: int = 100_000


class GrammarProblem(Exception):
    """What is wrong, and the budget key (`limit`) when the grammar parses but is too big."""

    def __init__(self, message: str, limit: str | None = None) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass
class _Group:
    alternatives: int = 0  # symbols of the finished alternatives
    sequence: int = 0  # symbols of the current one
    last: int | None = None  # symbols of the last item (what a postfix repeats), None at a sequence's start
    last_copies: int = 1  # repetitions multiplied up inside the last item: ("a"{10}){10} is 100
    most_copies: int = 1  # the largest such product anywhere in the group


@dataclass
class _Scan:
    text: str
    budget: GrammarBudget
    pos: int = 0
    symbols: int = 0
    defined: set[str] = field(default_factory=set)
    referenced: dict[str, int] = field(default_factory=dict)

    def fail(self, what: str) -> GrammarProblem:
        line = self.text.count("\n", 0, self.pos) + 1
        near = self.text[self.pos : self.pos + 24]
        return GrammarProblem(f"{what} at line {line}, offset {self.pos} (near {near!r})")

    def space(self, newline_ok: bool) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and (text[pos] in " \t#" or (newline_ok and text[pos] in "\r\n")):
            if text[pos] == "#":
                while pos < len(text) and text[pos] not in "\r\n":
                    pos += 1
            else:
                pos += 1
        self.pos = pos

    def name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _WORD:
            self.pos += 1
        if self.pos == start:
            raise self.fail("expecting a rule name")
        return self.text[start : self.pos]

    def char(self) -> None:
        text = self.text
        if self.pos >= len(text):
            raise self.fail("unexpected end of input")
        if text[self.pos] != "\\":
            self.pos += 1
            return
        kind = text[self.pos + 1 : self.pos + 2]
        if kind in _HEX_ESCAPES:
            digits = text[self.pos + 2 : self.pos + 2 + _HEX_ESCAPES[kind]]
            if len(digits) != _HEX_ESCAPES[kind] or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise self.fail(f"expecting {_HEX_ESCAPES[kind]} hex digits after \\{kind}")
            self.pos += 2 + len(digits)
        elif kind and kind in _SIMPLE_ESCAPES:
            self.pos += 2
        else:
            raise self.fail("unknown escape")

    def literal(self) -> int:
        self.pos += 1
        count = 0
        while self.pos < len(self.text) and self.text[self.pos] != '"':
            self.char()
            count += 1
        if self.pos >= len(self.text):
            raise self.fail("unterminated string")
        self.pos += 1
        return max(count, 1)

    def char_class(self) -> None:
        self.pos += 1
        if self.text[self.pos : self.pos + 1] == "^":
            self.pos += 1
        while self.pos < len(self.text) and self.text[self.pos] != "]":
            self.char()
            if self.text[self.pos : self.pos + 1] == "-" and self.text[self.pos + 1 : self.pos + 2] not in ("]", ""):
                self.pos += 1
                self.char()
        if self.pos >= len(self.text):
            raise self.fail("unterminated character class")
        self.pos += 1

    def token(self) -> None:
        if self.text[self.pos] == "!":
            self.pos += 1
        end = self.text.find("]>", self.pos)
        digits = self.text[self.pos + 2 : end] if self.text.startswith("<[", self.pos) and end > 0 else ""
        if not digits.isdigit() or not digits.isascii() or len(digits) > 9:
            raise self.fail("a token must be named by its id, as <[id]>")
        self.pos = end + 2

    def number(self) -> int:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in "0123456789":
            self.pos += 1
        if self.pos == start:
            raise self.fail("expecting a number")
        if self.pos - start > 9 or int(self.text[start : self.pos]) > self.budget.max_repetition:
            raise GrammarProblem(
                f"a repetition count of {self.text[start : self.pos][:12]} at offset {start} is over the limit of "
                f"{self.budget.max_repetition}",
                "max_repetition",
            )
        return int(self.text[start : self.pos])


def _repetition(scan: _Scan, nested: bool) -> tuple[int, int]:
    """`{m}`, `{m,}` or `{m,n}` after the `{`: (copies of the item written out, copies it may take at most)."""
    scan.space(nested)
    low = scan.number()
    scan.space(nested)
    high: int | None = low
    if scan.text[scan.pos : scan.pos + 1] == ",":
        scan.pos += 1
        scan.space(nested)
        high = scan.number() if scan.text[scan.pos : scan.pos + 1].isdigit() else None
        scan.space(nested)
    if scan.text[scan.pos : scan.pos + 1] != "}":
        raise scan.fail("expecting '}'")
    scan.pos += 1
    if high is not None and high < low:
        raise scan.fail(f"repetition {{{low},{high}}} has its maximum under its minimum")
    return low, max(low, 1) if high is None else max(high, 1)


def _item(scan: _Scan, group: _Group, nested: bool) -> bool:
    """Reads one item or postfix into `group`; False when the sequence ends here."""
    text, pos = scan.text, scan.pos
    head = text[pos] if pos < len(text) else ""
    size = 1
    if head == '"':
        size = scan.literal()
    elif head == "[":
        scan.char_class()
    elif head in ("<", "!"):
        scan.token()
    elif head == ".":
        scan.pos += 1
    elif head and head in _WORD:
        name = scan.name()
        scan.referenced.setdefault(name, pos)
    elif head in ("*", "+", "?", "{"):
        if group.last is None:
            raise scan.fail(f"{head!r} has no item before it to repeat")
        scan.pos += 1
        copies = _repetition(scan, nested)[1] if head == "{" else 1  # S* and S? are one rule around S
        group.last_copies *= copies
        if group.last_copies > scan.budget.max_repetition:  # llama.cpp refuses such nesting, dumping the grammar
            raise GrammarProblem(
                f"nested repetitions at offset {pos} multiply to {group.last_copies} copies, over the limit of "
                f"{scan.budget.max_repetition}",
                "max_repetition",
            )
        group.most_copies = max(group.most_copies, group.last_copies)
        added = group.last * (copies - 1)
        group.sequence += added
        group.last += added
        scan.space(nested)
        return True
    else:
        return False
    group.sequence += size
    group.last, group.last_copies = size, 1
    scan.space(nested)
    return True


def _rule_body(scan: _Scan) -> int:
    """The alternatives after `::=`, groups nested with an explicit stack; returns the rule's symbol count."""
    stack = [_Group()]
    while True:
        nested = len(stack) > 1
        if _item(scan, stack[-1], nested):
            continue
        head = scan.text[scan.pos : scan.pos + 1]
        if head == "(":
            if len(stack) > scan.budget.max_depth:
                raise GrammarProblem(
                    f"groups nested deeper than the limit of {scan.budget.max_depth} at offset {scan.pos}",
                    "max_grammar_depth",
                )
            scan.pos += 1
            stack.append(_Group())
            scan.space(True)
        elif head == "|":
            group = stack[-1]
            group.alternatives, group.sequence, group.last = group.alternatives + group.sequence, 0, None
            scan.pos += 1
            scan.space(True)
        elif head == ")" and nested:
            done = stack.pop()
            size = max(done.alternatives + done.sequence, 1)
            outer = stack[-1]
            outer.sequence += size
            outer.last, outer.last_copies = size, done.most_copies
            outer.most_copies = max(outer.most_copies, done.most_copies)
            scan.pos += 1
            scan.space(len(stack) > 1)
        elif nested:
            raise scan.fail("expecting ')'")
        else:
            return stack[0].alternatives + stack[0].sequence


def check_gbnf(text: str, budget: GrammarBudget) -> None:
    """Raises GrammarProblem when `text` does not parse as GBNF with a `root` rule or is over `budget`."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > budget.max_bytes:
        raise GrammarProblem(f"the grammar is {size} bytes, over the limit of {budget.max_bytes}", "max_grammar_bytes")
    if "\x00" in text:
        raise GrammarProblem(f"the grammar contains a NUL character at offset {text.index(chr(0))}; write it as \\x00")
    scan = _Scan(text, budget)
    scan.space(True)
    while scan.pos < len(text):
        name = scan.name()
        scan.defined.add(name)
        if len(scan.defined) > budget.max_rules:
            raise GrammarProblem(f"the grammar has more than {budget.max_rules} rules", "max_grammar_rules")
        scan.space(False)
        if not text.startswith("::=", scan.pos):
            raise scan.fail("expecting '::='")
        scan.pos += 3
        scan.space(True)
        scan.symbols += _rule_body(scan)
        if scan.symbols > budget.max_symbols:
            raise GrammarProblem(
                f"the grammar expands to more than {budget.max_symbols} symbols (repetitions written out)",
                "max_grammar_symbols",
            )
        if scan.pos < len(text) and text[scan.pos] not in "\r\n":
            raise scan.fail("expecting the end of the rule")
        scan.space(True)
    missing = sorted(set(scan.referenced) - scan.defined, key=scan.referenced.__getitem__)
    if missing:
        raise GrammarProblem(f"rule {missing[0]!r} is used (offset {scan.referenced[missing[0]]}) but never defined")
    if "root" not in scan.defined:
        raise GrammarProblem("the grammar has no `root` rule (where the answer starts)")
