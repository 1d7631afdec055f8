"""Validate an action payload against its schema and say what is wrong in Segment's words.

Users moving from Segment know its messages (``The root value is missing the required
field 'url'.``, ``Event Name must be a string but it was an object.``), so we phrase ours
the same way: the field's title when it has one, else the JSON pointer of the value.

A schema within ``schema_compiler``'s keywords (every catalog action's) is compiled to closures
once; any other schema is checked by fastjsonschema and explained by jsonschema, as before. Both
paths produce errors with the same fields, worded by the same ``_message``.
"""
from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import fastjsonschema

from .schema_compiler import compile_schema


def _is_uri(value) -> bool:
    if not isinstance(value, str):
        return True
    try:
        parts = urlsplit(value)
    except ValueError:  # "http://[" and other malformed hosts: not a URI, and never a traceback
        return False
    return bool(parts.scheme and (parts.netloc or parts.path)) and " " not in value


def _is_email(value) -> bool:
    return not isinstance(value, str) or re.fullmatch(r"[^@\s]+@[^@\s]+", value) is not None


def _is_date_time(value) -> bool:
    if not isinstance(value, str):
        return True
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


# The formats we check, for every path: jsonschema's checker, fastjsonschema and the compiled closures.
# Other formats are annotations.
_FORMAT_CHECKS = {"uri": _is_uri, "email": _is_email, "date-time": _is_date_time}


@functools.cache
def _jsonschema_formats():
    """jsonschema's checker for our formats. jsonschema is imported only when something needs it:
    the catalogs' schemas are compiled (engine/schema_compiler.py), and importing it costs 70 ms."""
    from jsonschema import FormatChecker

    checker = FormatChecker(formats=())
    for name, check in _FORMAT_CHECKS.items():
        checker.checks(name)(check)
    return checker


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _number(value) -> str:
    try:
        return str(value)
    except ValueError:  # an int past Python's 4300-digit conversion limit; JSON text can hold one
        return f"an integer of {value.bit_length()} bits"


_ARTICLE = {"object": "an object", "array": "an array", "integer": "an integer", "null": "null"}


def _expected(types) -> str:
    names = [types] if isinstance(types, str) else list(types)
    words = [_ARTICLE.get(name, f"a {name}") for name in names]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


# For a schema the compiler does not cover: keywords that mean the same in draft 7 (what fastjsonschema
# implements) and draft 2020-12. A schema using anything else is validated by jsonschema alone.
_SHARED_KEYWORDS = frozenset({
    "$schema", "$id", "$comment", "title", "description", "default", "examples", "type", "enum", "const",
    "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "uniqueItems",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength", "maxLength",
    "pattern", "format", "anyOf", "oneOf", "allOf", "not", "minProperties", "maxProperties",
    "patternProperties", "propertyNames",
})
_SUBSCHEMA_MAPS = ("properties", "patternProperties")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf")
_SUBSCHEMAS = ("additionalProperties", "items", "not", "propertyNames")


def _uses_shared_keywords_only(schema) -> bool:
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict):
        return False
    for key, value in schema.items():
        if key.startswith("x-"):
            continue
        if key not in _SHARED_KEYWORDS:
            return False
        if key in _SUBSCHEMA_MAPS and not all(_uses_shared_keywords_only(v) for v in value.values()):
            return False
        if key in _SUBSCHEMA_LISTS and not all(_uses_shared_keywords_only(v) for v in value):
            return False
        if key in _SUBSCHEMAS and not _uses_shared_keywords_only(value):
            return False
    return True


def _fast_validator(schema: dict):
    """A compiled yes/no check (about 25x faster than jsonschema), or None when the schema is outside it.

    fastjsonschema generates Python from the schema (our catalog files), never from event data.
    """
    if not _uses_shared_keywords_only(schema):
        return None
    plain = {key: value for key, value in schema.items() if key != "$schema"}
    return fastjsonschema.compile(plain, formats=_FORMAT_CHECKS)


def _order(error):
    # A ``false`` schema's error has no keyword (None); "" keeps it comparable with a keyword at the same path.
    return list(map(str, error.absolute_path)), error.validator or ""


class PayloadValidator:
    """Compiled once per action; ``errors(payload)`` runs per call.

    A schema within the compiler's keywords becomes two closures: a yes/no check, and, for a payload that
    fails it, the list of errors jsonschema would report. Any other schema keeps the older pair: a
    fastjsonschema check, then jsonschema to explain a payload that fails it.

    Schemas come from the catalogs in ``schemas/``, which tests check against the 2020-12
    metaschema; checking them again at every start cost a tenth of a second.
    """

    def __init__(self, schema: dict):
        self._schema = schema
        self._compiled = compile_schema(schema, _FORMAT_CHECKS)
        self._jsonschema: Any = None  # a jsonschema validator, made when first needed
        self._fast = None if self._compiled is not None else _fast_validator(schema)
        self._titles = {
            name: spec.get("title") for name, spec in schema.get("properties", {}).items() if isinstance(spec, dict)
        }
        #: ``is_valid(payload)``: True when :meth:`errors` would find nothing, answered as fast as possible.
        self.is_valid = self._compiled.is_valid if self._compiled is not None \
            else (lambda payload: not self.errors(payload))

    def errors(self, payload: dict) -> list[str]:
        """Human messages for every problem, in a stable order; empty when valid."""
        if self._compiled is not None:
            if self._compiled.is_valid(payload):
                return []
            found = self._compiled.iter_errors(payload)
            if len(found) > 1:
                found.sort(key=_order)
            return [self._message(error) for error in found]
        if self._fast is not None:
            try:
                self._fast(payload)
                return []
            except fastjsonschema.JsonSchemaException:
                pass
        return self._jsonschema_errors(payload)

    def _jsonschema_errors(self, payload) -> list[str]:
        """The messages jsonschema's errors give: what explains a schema the compiler does not cover."""
        validator = self._jsonschema
        if validator is None:
            from jsonschema import Draft202012Validator

            validator = self._jsonschema = Draft202012Validator(self._schema, format_checker=_jsonschema_formats())
        return [self._message(error) for error in sorted(validator.iter_errors(payload), key=_order)]

    def _label(self, path) -> str:
        path = list(path)
        if not path:
            return "The root value"
        title = self._titles.get(path[0]) if len(path) == 1 else None
        if title:
            return str(title)
        return "The value at /" + "/".join(str(part) for part in path)

    def _message(self, error) -> str:
        label = self._label(error.absolute_path)
        value, kind = error.instance, error.validator
        own = error.schema.get("x-messages") if isinstance(error.schema, dict) else None
        if isinstance(own, dict) and kind in own:  # the catalog's words for a rule plain keywords cannot say
            return own[kind]
        if kind == "required":
            missing = re.match(r"'(.*)' is a required property", error.message)
            name = missing.group(1) if missing else error.message
            return f"{label} is missing the required field '{name}'."
        if kind == "type":
            return f"{label} must be {_expected(error.validator_value)} but it was {_kind(value)}."
        if kind == "enum":
            choices = ", ".join(f'"{choice}"' for choice in error.validator_value)
            return f"{label} must be one of: {choices}."
        if kind == "const":
            return f"{label} must be {error.validator_value!r}."
        if kind == "format":
            return f"{label} must be a valid {error.validator_value} string but it was {value!r}."
        if kind == "additionalProperties":
            extra = sorted(set(value) - set(error.schema.get("properties", {})))
            return f"{label} has an unexpected property, {', '.join(extra)}, which is not allowed."
        if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
            sign = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[kind]
            return f"{label} must be {sign} {error.validator_value} but it was {_number(value)}."
        if kind == "minLength":
            return f"{label} must be at least {error.validator_value} characters long."
        if kind == "maxLength":
            return f"{label} must be at most {error.validator_value} characters long."
        if kind == "minItems":
            return f"{label} must have at least {error.validator_value} items."
        if kind == "maxItems":
            return f"{label} must have at most {error.validator_value} items."
        if kind == "pattern":
            return f"{label} must match the pattern {error.validator_value!r}."
        return f"{label} {error.message}."
