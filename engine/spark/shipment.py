"""The rules as a Spark job carries them: the rule files' text and the variables they name.

The driver reads and lints the rule files (:func:`ship`); the job carries their text, not a
compiled :class:`~engine.ruleset.RuleSet` (compiled rules hold generated code, which does not
travel), and each executor process compiles them once (:meth:`Shipment.rules`) and keeps them
for every task it runs. So a cluster needs Switchyard installed, not the rule files.

``${VAR}`` settings are expanded on the executors with the driver's values of the variables the
files name (shipped with the job, like the text), and the executor's own environment for those
the driver does not have (secrets a cluster sets with ``spark.executorEnv.VAR``).
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..diagnostics import ERROR, Problem
from ..loader import compile_paths, discover
from ..ruleset import RuleSet

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


class RulesRefused(Exception):
    """The rule files have errors (or cannot be read): the job does not start."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} problem(s) in rule files")
        self.problems = problems


@dataclass(frozen=True)
class Shipment:
    files: tuple[tuple[str, str], ...]     # (file name, text), in the order the rules load them
    environ: tuple[tuple[str, str], ...]   # the driver's values of the variables the files name

    @property
    def key(self) -> str:
        """Names these rules and values: an executor compiles each shipment once."""
        return hashlib.sha256(repr((self.files, self.environ)).encode("utf-8", "surrogatepass")).hexdigest()[:24]

    def rules(self) -> RuleSet:
        """The compiled rules, built the first time this process needs them."""
        key = self.key
        with _LOCK:
            rules = _COMPILED.get(key)
            if rules is None:
                rules = _COMPILED[key] = self._compile()
        return rules

    def _compile(self) -> RuleSet:
        folder = Path(tempfile.mkdtemp(prefix="switchyard-rules-"))
        paths = []
        for number, (name, text) in enumerate(self.files):
            # One folder each keeps the names as written (problems quote them) and the order.
            path = folder / f"{number:04d}" / name
            path.parent.mkdir()
            path.write_text(text, encoding="utf-8")
            paths.append(path)
        rules, problems = compile_paths(paths, {**os.environ, **dict(self.environ)})
        errors = [p for p in problems if p.severity == ERROR]
        if errors:  # the driver linted the same text: only a different environment gets here
            raise RulesRefused(errors)
        return rules


_COMPILED: dict[str, RuleSet] = {}
_LOCK = threading.Lock()


def ship(paths: Sequence[str | os.PathLike[str]], *, dry_run: bool = False) -> tuple[Shipment, RuleSet, list[Problem]]:
    """Read and lint the rule files under ``paths``; the shipment, the rules compiled here, and every problem.

    Raises :class:`RulesRefused` on any error, and, unless ``dry_run``, on a setting whose
    variable is unset (SY501), as ``switchyard run`` refuses to deliver with one.
    """
    rules, problems = compile_paths(paths)
    refused = [p for p in problems if p.severity == ERROR or (not dry_run and p.code == "SY501")]
    if refused:
        raise RulesRefused(refused)
    files, _ = discover(paths)
    texts = tuple((path.name, path.read_text(encoding="utf-8")) for path in files)
    names = sorted({name for _, text in texts for name in _REFERENCE.findall(text)})
    environ = tuple((name, os.environ[name]) for name in names if name in os.environ)
    return Shipment(texts, environ), rules, problems
