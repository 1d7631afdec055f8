"""The trigger language: compile a trigger once, then match it against many events.

    >>> from engine.trigger import compile_trigger
    >>> t = compile_trigger('type = "track" and event = "Order Completed"')
    >>> t.matches({"type": "track", "event": "Order Completed"})
    True

Stages, each its own module: :mod:`.parser` (text -> syntax tree, SY101/SY102),
:mod:`.lint` (SY104 warnings), :mod:`.compiler` (tree -> closures, SY103/SY105),
:mod:`.codegen` (closures -> one generated function for the event path),
:mod:`.keys` (what a trigger requires of ``type`` and ``event``) and :mod:`.explain`.
The language itself is documented in docs/triggers.md.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.diagnostics import Problem
from engine.trigger.codegen import generate
from engine.trigger.compiler import Compiled, compile_tree
from engine.trigger.errors import TriggerError
from engine.trigger.explain import Explanation, explain
from engine.trigger.keys import Keys, compared_values, required_keys
from engine.trigger.lint import lint
from engine.trigger.parser import parse

__all__ = ["Explanation", "Trigger", "TriggerError", "compile_trigger"]


class Trigger:
    """A compiled trigger.

    ``matches(event) -> bool`` is the generated function itself (no method call in between,
    see :mod:`.codegen`): pure, thread-safe, and it never raises, whatever the shape of the event.
    It is generated on first use: lint and the mapping index never call it, and generating costs
    as much as parsing. Once generated it is a plain attribute, read as fast as before.

    ``keys`` is what a matching event must have in ``type`` and ``event``, and ``compared``
    every string those fields are compared with (see :mod:`.keys`); :mod:`engine.index`
    uses them to skip triggers that cannot match and to fold the conditions it can decide.
    """

    __slots__ = ("_compiled", "compared", "keys", "matches", "text", "warnings")

    def __init__(self, text: str, compiled: Compiled, warnings: list[Problem]):
        self.text = text
        self.warnings = warnings
        self.keys: Keys = required_keys(compiled)
        self.compared: Keys = compared_values(compiled)
        self._compiled = compiled

    matches: Callable[[Any], bool]

    def __getattr__(self, name: str) -> Any:
        # Called only while a slot is unset: the first read of ``matches`` generates it.
        if name == "matches":
            matches = generate(self._compiled)
            assert not isinstance(matches, bool)  # without what the index knows, always a function
            self.matches = matches
            return matches
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def compiled(self) -> Compiled:
        """The compiled tree (for explain and for :mod:`engine.index`, which specialises it)."""
        return self._compiled

    def explain(self, event: Any) -> Explanation:
        """Every condition's value and result on ``event``, as a tree mirroring the trigger."""
        return explain(self._compiled, self.text, event)

    def __repr__(self) -> str:
        return f"Trigger({self.text!r})"


def compile_trigger(text: str) -> Trigger:
    """Compile ``text``; raise :class:`TriggerError` listing its problems (warnings included)."""
    tree = parse(text)
    warnings = lint(tree, text)
    try:
        compiled = compile_tree(tree, text)
    except TriggerError as error:
        raise TriggerError(error.problems + warnings) from None
    return Trigger(text, compiled, warnings)
