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

_EXPORTS = {
    "load": ("engine.loader", "load"),
    "RuleError": ("engine.loader", "RuleError"),
    "RuleSet": ("engine.ruleset", "RuleSet"),
    "ActionCall": ("engine.model", "ActionCall"),
    "MappingError": ("engine.model", "MappingError"),
    "Result": ("engine.model", "Result"),
    "compile_trigger": ("engine.trigger", "compile_trigger"),
    "TriggerError": ("engine.trigger", "TriggerError"),
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        module, attribute = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
