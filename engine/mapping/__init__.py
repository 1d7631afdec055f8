"""Mappings: turning one event into one action payload with JMESPath (spec section 2, "Field values").

Compile once with :func:`compile_fields` (or :func:`compile_expression` for a single
expression), then call ``mapper.apply(event)`` for each event. See docs/mappings.md.
"""
from engine.mapping.expressions import MappingError, compile_expression, format_path
from engine.mapping.fields import Mapper, compile_fields, merge_defaults
from engine.mapping.functions import CUSTOM_FUNCTION_NAMES, OPTIONS

__all__ = [
    "CUSTOM_FUNCTION_NAMES",
    "Mapper",
    "MappingError",
    "OPTIONS",
    "compile_expression",
    "compile_fields",
    "format_path",
    "merge_defaults",
]
