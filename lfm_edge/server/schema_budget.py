"""A JSON schema checked before it is turned into a grammar: what the converter would write out, bounded.

llama-cpp-python's converter writes `maxLength: n` (and maxItems, minLength, minItems, a pattern's `{m,n}`) as n
nested copies, an `enum` as one alternative per value (each sampling step then costs in proportion), follows `$ref`
wherever it points (a remote one would be fetched) and loops on a recursive one. So before converting, every key
is checked here against the server's limits, and each refusal names the key (its path in the request) and the limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lfm_edge.errors import RequestError

_COUNTS = ("maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties")
_Pending = tuple[Any, str, int, tuple[str, ...]]  # a schema node, its key path, its depth, the $refs that led to it
_DATA_KEYS = frozenset({"enum", "const", "default", "examples", "description", "title", "$comment"})


@dataclass(frozen=True)
class SchemaBudget:
    max_bytes: int = 64 * 1024
    max_depth: int = 32
    max_repetition: int = 1000
    max_enum: int = 256
    max_pattern_chars: int = 1000


def check_schema(schema: Any, param: str, budget: SchemaBudget) -> None:
    """Raises RequestError(400, unsupported_schema) naming the key of the first problem (e.g.
    `response_format.json_schema.schema.properties.name.maxLength`)."""
    size = len(json.dumps(schema))
    if size > budget.max_bytes:
        message = f"{param}: the schema is {size} bytes, over the limit of {budget.max_bytes} (max_grammar_bytes)"
        raise RequestError(message, 400, "unsupported_schema", param)
    _Walk(schema, param, budget).run()


class _Walk:
    def __init__(self, root: Any, param: str, budget: SchemaBudget) -> None:
        self.root, self.param, self.budget = root, param, budget
        self.finished_refs: set[str] = set()

    def fail(self, where: str, problem: str) -> RequestError:
        return RequestError(f"{where}: {problem}", 400, "unsupported_schema", self.param)

    def run(self) -> None:
        # (node, its path, its depth, the $refs being followed to reach it): iterative, no Python recursion.
        pending: list[_Pending] = [(self.root, self.param, 0, ())]
        while pending:
            node, where, depth, refs = pending.pop()
            if depth > self.budget.max_depth:
                raise self.fail(where, f"nested deeper than the limit of {self.budget.max_depth} levels")
            if isinstance(node, list):
                pending.extend((item, f"{where}[{i}]", depth + 1, refs) for i, item in enumerate(node))
            elif isinstance(node, dict):
                self.check_keys(node, where)
                if isinstance(node.get("$ref"), str):
                    pending.extend(self.follow(node["$ref"], f"{where}.$ref", depth, refs))
                pending.extend((value, f"{where}.{key}", depth + 1, refs) for key, value in node.items()
                               if key not in _DATA_KEYS and key != "$ref")  # fmt: skip

    def check_keys(self, node: dict[str, Any], where: str) -> None:
        limit = self.budget.max_repetition
        for key in _COUNTS:
            value = node.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > limit:
                raise self.fail(f"{where}.{key}", f"{value} is over the limit of {limit} (max_repetition)")
        enum = node.get("enum")
        if isinstance(enum, list) and len(enum) > self.budget.max_enum:
            too_many = f"{len(enum)} values is over the limit of {self.budget.max_enum} (max_enum)"
            raise self.fail(f"{where}.enum", too_many)
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            self.check_pattern(pattern, f"{where}.pattern")

    def check_pattern(self, pattern: str, where: str) -> None:
        if len(pattern) > self.budget.max_pattern_chars:
            raise self.fail(where, f"{len(pattern)} characters is over the limit of {self.budget.max_pattern_chars}")
        expanded = pattern_expansion(pattern)
        if expanded > self.budget.max_repetition:
            raise self.fail(
                where,
                f"its repetitions write out {expanded} copies, over the limit of {self.budget.max_repetition} "
                "(max_repetition)",
            )

    def follow(self, ref: str, where: str, depth: int, refs: tuple[str, ...]) -> list[_Pending]:
        if not ref.startswith("#"):
            raise self.fail(where, f"{ref[:80]!r} is not inside this schema (#/...); remote ones are never fetched")
        if ref in refs:
            raise self.fail(
                where, f"{ref[:80]!r} refers back to a schema that contains it (recursion is not supported)"
            )
        if ref in self.finished_refs:
            return []
        self.finished_refs.add(ref)
        target: Any = self.root
        for part in [p.replace("~1", "/").replace("~0", "~") for p in ref[1:].split("/") if p]:
            if not isinstance(target, dict) or part not in target:
                raise self.fail(where, f"{ref[:80]!r} points to nothing in this schema")
            target = target[part]
        return [(target, f"{where}->{ref[:80]}", depth + 1, (*refs, ref))]


def pattern_expansion(pattern: str) -> int:
    """How many item copies the converter writes for a regex: each `{m,n}` (and *, +, ?) counts its larger bound,
    times the bounds of the groups around it; the copies of all quantifiers add up."""
    total = 0
    stack: list[int] = [0]  # per open group: copies written inside it so far
    last = 1  # copies of the last item (what a quantifier repeats)
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i, last = i + 2, 1
            continue
        if c == "[":
            end = pattern.find("]", i + 2)
            i, last = (len(pattern) if end < 0 else end + 1), 1
            continue
        if c == "(":
            stack.append(0)
        elif c == ")" and len(stack) > 1:
            inner = stack.pop()
            last = max(inner, 1)
            stack[-1] += last
        elif c == "{" and (close := pattern.find("}", i)) > 0:
            bounds = pattern[i + 1 : close].split(",")
            numbers = [int(b) for b in bounds if b.strip().isdigit() and len(b.strip()) < 10]
            count = max(numbers, default=1)
            stack[-1] += last * max(count - 1, 0)
            last *= max(count, 1)
            total = max(total, stack[-1])
            i = close + 1
            continue
        else:
            last = 1
            stack[-1] += 1
        total = max(total, sum(stack))
        i += 1
    return max(total, sum(stack))
