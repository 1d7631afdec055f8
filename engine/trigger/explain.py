"""Why a trigger did or did not match one event: a tree that mirrors the expression.

Explain evaluates every condition (no short-circuit) so the user sees each value the
trigger looked at. It reuses the compiled getters and tests, so its answer is the
answer ``matches`` gives.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.paths import MISSING
from engine.trigger import nodes
from engine.trigger.compiler import Compiled

_KINDS = {nodes.Condition: "condition", nodes.AllOf: "all", nodes.AnyOf: "any",
          nodes.Negation: "not", nodes.Always: "always"}


@dataclass
class Explanation:
    """One node of the expression and its result on the event.

    Conditions also carry ``path``, ``operator`` (canonical word form, e.g.
    ``"is greater than"``), ``expected`` (the literal, or None) and ``seen`` (the value at
    the path, a list for ``[*]`` paths, or MISSING).
    """

    kind: str
    text: str
    result: bool
    children: list["Explanation"] = field(default_factory=list)
    path: str | None = None
    operator: str | None = None
    expected: Any = None
    seen: Any = MISSING

    def to_dict(self) -> dict:
        """JSON-friendly: a missing value has no ``seen`` key and ``"missing": true``."""
        out: dict[str, Any] = {"kind": self.kind, "text": self.text, "result": self.result}
        if self.kind == "condition":
            out.update(path=self.path, operator=self.operator, expected=self.expected)
            if self.seen is MISSING:
                out["missing"] = True
            else:
                out["seen"] = self.seen
        else:
            out["children"] = [child.to_dict() for child in self.children]
        return out

    def conditions(self) -> list["Explanation"]:
        """Every condition node, in source order."""
        if self.kind == "condition":
            return [self]
        return [leaf for child in self.children for leaf in child.conditions()]

    def toward_match(self, negated: bool = False) -> list[tuple["Explanation", bool]]:
        """Every condition with whether its result brings the trigger nearer to matching: its holding, or,
        under an odd number of ``not``, its not holding."""
        if self.kind == "condition":
            return [(self, bool(self.result) != negated)]
        inner = not negated if self.kind == "not" else negated
        return [pair for child in self.children for pair in child.toward_match(inner)]

    def satisfied_count(self) -> int:
        """How many conditions held (to rank near misses; a held condition under `not` counts too)."""
        return sum(1 for leaf in self.conditions() if leaf.result)

    def condition_count(self) -> int:
        return len(self.conditions())


def explain(compiled: Compiled, text: str, event: Any) -> Explanation:
    """Evaluate ``compiled`` on ``event``, keeping every intermediate result."""
    node = compiled.node
    kind = _KINDS[type(node)]
    source = text[node.span.start:node.span.end]
    if kind == "condition":
        seen = compiled.path.get(event)
        return Explanation(kind, source, compiled.test(seen), path=compiled.path.text,
                           operator=compiled.operator.name, expected=compiled.operand, seen=seen)
    children = [explain(child, text, event) for child in compiled.children]
    results = [child.result for child in children]
    result = {"all": all, "any": any, "not": lambda r: not r[0], "always": lambda r: True}[kind](results)
    return Explanation(kind, source, result, children)
