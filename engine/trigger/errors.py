"""TriggerError and the helper that locates a Problem inside a trigger's text.

Positions here are relative to the trigger text (1-based line and column, ``file=""``);
the rule-file loader re-locates them in the YAML file with :meth:`Problem.located`.
"""
from __future__ import annotations

from engine.diagnostics import ERROR, Problem


class TriggerError(Exception):
    """A trigger that cannot be compiled. ``problems`` lists every problem found, in order.

    That is the first syntax error, or else every bad literal and regex, plus any lint
    warnings, so a rule file shows all of them in one ``switchyard lint`` run.
    """

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.line, p.column))
        super().__init__("; ".join(f"{p.line}:{p.column}: {p.code} {p.message}" for p in self.problems))


def problem_at(code: str, message: str, text: str, line: int, column: int, severity: str = ERROR) -> Problem:
    """A Problem at ``line``/``column`` of ``text``, carrying that source line for the caret."""
    lines = text.split("\n")
    source_line = lines[line - 1] if 0 < line <= len(lines) else None
    return Problem(code, message, severity, "", line, column, source_line)
