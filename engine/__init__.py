"""Switchyard: route Segment-spec events to the tools that act on them, with rules as code.

The public API for embedding::

    import engine
    rules = engine.load("rules/")        # raises engine.RuleError listing every problem
    result = rules.evaluate(event)       # pure, thread-safe, no I/O
    engine.compile_trigger('type = "track"').matches(event)

Names are imported lazily so ``import engine`` stays cheap for the CLI.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["load", "RuleError", "RuleSet", "ActionCall", "MappingError", "Result", "compile_trigger",
           "TriggerError", "__version__"]

from engine.lazy import attributes

_EXPORTS = {
    "load": "engine.loader",
    "RuleError": "engine.loader",
    "RuleSet": "engine.ruleset",
    "ActionCall": "engine.model",
    "MappingError": "engine.model",
    "Result": "engine.model",
    "compile_trigger": "engine.trigger",
    "TriggerError": "engine.trigger",
}

__getattr__ = attributes(globals(), _EXPORTS)
