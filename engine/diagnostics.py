"""Problems found in rule files, and the stable codes users can look up and silence.

Every check reports a :class:`Problem`; nothing in the loader raises on the first
mistake, so ``switchyard lint`` can show all of them in one run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

ERROR = "error"
WARNING = "warning"


class AtKey(tuple):
    """A path to a value whose problem is its key itself (YAML read ``on:`` as a boolean): placed at the key."""

#: Stable codes, grouped by what they check. Documented in docs/cli.md.
CODES = {
    "SY001": "YAML syntax error",
    "SY002": "rule file does not match the rules schema",
    "SY003": "rule file cannot be read",
    "SY004": "YAML aliases repeat more values than the file may",
    "SY005": "rule file nests too deeply",
    "SY006": "a test event's unquoted value that YAML reads otherwise than JSON",
    "SY101": "trigger syntax error",
    "SY102": "unknown operator or keyword in a trigger",
    "SY103": "invalid regular expression",
    "SY104": "`and` and `or` mixed at one level without parentheses",
    "SY105": "literal of the wrong kind for its operator",
    "SY106": "`!=` with a number: true on a missing field here, false in Segment",
    "SY108": "regular expression needs backtracking (backreference, lookaround)",
    "SY109": "regular expression repeats a repeat",
    "SY201": "JMESPath syntax error",
    "SY202": "unknown JMESPath function or wrong number of arguments",
    "SY203": "function arguments without a comma between them",
    "SY301": "unknown action catalog",
    "SY302": "unknown action",
    "SY303": "unknown action field",
    "SY304": "required action field has no mapping and no default",
    "SY305": "literal value of the wrong type for its field",
    "SY306": "unknown destination transport or bad destination setting",
    "SY307": "a setting the transport cannot deliver without is not in the file",
    "SY401": "duplicate mapping name",
    "SY402": "duplicate destination name",
    "SY403": "test case refers to an unknown mapping",
    "SY501": "environment variable is not set and has no default",
}


@dataclass(frozen=True)
class Problem:
    """One finding, located in a file (1-based line and column)."""

    code: str
    message: str
    severity: str = ERROR
    file: str = ""
    line: int = 1
    column: int = 1
    source_line: str | None = field(default=None, compare=False)
    #: The caret's column in ``source_line`` when that line is shown with secrets masked (shorter or longer
    #: than in the file); None: ``column``.
    caret: int | None = field(default=None, compare=False)

    def located(self, file: str, line: int, column: int, source_line: str | None = None) -> Problem:
        return Problem(self.code, self.message, self.severity, file, line, column, source_line)

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }


def format_text(problem: Problem) -> str:
    """``FILE:LINE:COL: severity CODE message``, then the source line and a caret."""
    head = f"{problem.file}:{problem.line}:{problem.column}: {problem.severity} {problem.code} {problem.message}"
    if problem.source_line is None:
        return head
    text = problem.source_line.rstrip("\n")
    caret = " " * ((problem.caret or problem.column) - 1) + "^"
    return f"{head}\n    {text}\n    {caret}"


def format_github(problem: Problem) -> str:
    """A GitHub Actions workflow command, shown as an annotation on the pull request."""
    kind = "error" if problem.severity == ERROR else "warning"
    message = _escaped(f"{problem.code} {problem.message}")
    file = _escaped(str(problem.file)).replace(":", "%3A").replace(",", "%2C")  # a property's own separators
    return f"::{kind} file={file},line={problem.line},col={problem.column},title={problem.code}::{message}"


def _escaped(text: str) -> str:
    """``text`` as a workflow command's data: ``%`` and line breaks escaped, as GitHub's toolkit does."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
