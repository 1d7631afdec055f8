"""Compile an action schema into closures that validate a payload the way jsonschema does.

This module owns the subset of JSON Schema 2020-12 our catalogs use (``KEYWORDS``, one row per keyword)
and turns a schema into two closures, once per schema: ``is_valid(value)``, which answers yes or no and
stops at the first failure, and ``iter_errors(value)``, which lists what is wrong as ``Error`` records carrying
the same fields jsonschema's ``ValidationError`` does (path, keyword, keyword value, instance, schema,
message). Semantics follow jsonschema's ``Draft202012Validator`` with a format checker, keyword by
keyword (``jsonschema/_keywords.py``, ``_types.py`` and ``_utils.equal``).

For the per-call path, ``is_valid`` of an object schema is then generated as one Python function
(``_Writer``): straight-line checks of the payload's keys and of each declared property, with the common
leaf shapes written inline and a call to the property's closure for the rest. Only our own identifiers
are written into its source; every property name, limit, enum and checker is bound as a constant in the
function's namespace (``_k0``, ``_c1``), so schema text is never spliced into code. The closure stays the
reference: each inline check is only a shortcut to "valid" and the closure decides every other value, and
a schema the writer does not cover, or whose source Python refuses, keeps the closure as ``is_valid``.

It must not: parse or look at schema text per call, raise on any JSON value, or word messages for users
(``validation`` does that). A schema using anything outside ``KEYWORDS`` and the annotations is not
compiled (``compile_schema`` returns None) and its caller keeps jsonschema for it.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from numbers import Number
from typing import Any, Callable, NamedTuple, cast

from engine.generated import define
from engine.predicates import all_of

# A test answers "is this value valid here?"; None stands for a test that always passes.
Test = Callable[[object], object]
# An explanation appends an Error for every failure of a value at a path (a tuple of keys and indexes).
Explain = Callable[[object, tuple, list], None]

# Keywords that never assert anything. Draft 2020-12 validators ignore them (x-* are ours). ``$schema`` is
# an annotation only at the root: below it, jsonschema switches dialect (``Validator.evolve``).
ANNOTATIONS = frozenset({"title", "description", "$comment", "default", "examples", "deprecated", "readOnly",
                         "writeOnly"})


class Error(NamedTuple):
    """One failed assertion, with the fields of ``jsonschema.ValidationError`` that wording reads."""

    absolute_path: tuple
    validator: str | None  # the keyword; None for a ``false`` schema, as in jsonschema
    validator_value: Any
    instance: Any
    schema: Any
    detail: Any = None  # the missing property, for ``required``

    @property
    def message(self) -> str:
        """jsonschema's own sentence for this error."""
        return _sentence(self)


class CompiledSchema(NamedTuple):
    is_valid: Callable[[object], bool]
    iter_errors: Callable[[object], list]
    source: str | None = None  # the generated source of ``is_valid``; None when it is the closure


class _Node(NamedTuple):
    test: Test | None
    explain: Explain | None
    # Python types whose every value passes (a schema that only says ``type``), so that a parent can skip the
    # call for them: the common case of a payload field.
    sure: frozenset = frozenset()
    schema: Any = None
    # (keyword, test) for each keyword that can fail, in the schema's order: what ``_Writer`` reads.
    tests: tuple = ()


class _Unsupported(Exception):
    """The schema uses something outside ``KEYWORDS``."""


def compile_schema(schema, formats: Mapping[str, Callable[[object], bool]],
                   generate: bool = True) -> CompiledSchema | None:
    """Closures for ``schema`` (already checked against the metaschema), or None when it is outside the subset.

    ``formats`` maps a format name to its checker, as registered with jsonschema's ``FormatChecker``; other
    formats are annotations, as they are there. With ``generate``, ``is_valid`` is a generated function where
    the schema allows one, else the closure.
    """
    compiler = _Compiler(formats)
    try:
        node = compiler.compile(schema, root=True)
    except _Unsupported:
        return None
    if node.test is None:
        return CompiledSchema(lambda value: True, lambda value: [])
    test: Test = node.test
    explain: Explain = node.explain if node.explain is not None else (lambda value, path, found: None)

    def is_valid(value) -> bool:
        return bool(test(value))

    def iter_errors(value) -> list:
        found: list = []
        explain(value, (), found)
        return found

    generated = _generate(compiler, node, is_valid) if generate else None
    if generated is None:
        return CompiledSchema(is_valid, iter_errors)
    return CompiledSchema(generated[0], iter_errors, generated[1])


class _Compiler:
    def __init__(self, formats):
        self.formats = formats
        # id of a subschema -> (the subschema, its node): ``_Writer`` reads the nodes of the properties that
        # ``_properties`` compiled, rather than compiling them again. The subschema is kept so its id stays its.
        self.nodes: dict[int, tuple] = {}

    def compile(self, schema, root: bool = False) -> _Node:
        if schema is True:
            return _ALWAYS
        if schema is False:
            return _Node(_never, _explain_false)
        if not isinstance(schema, dict):
            raise _Unsupported(schema)
        if root:
            return self._compile(schema, root)
        if id(schema) not in self.nodes:
            self.nodes[id(schema)] = (schema, self._compile(schema, root))
        return self.nodes[id(schema)][1]

    def _compile(self, schema: dict, root: bool) -> _Node:
        parts = []
        for key, value in schema.items():
            if not isinstance(key, str):
                raise _Unsupported(key)
            if key in ANNOTATIONS or key.startswith("x-") or (root and key == "$schema"):
                continue
            row = KEYWORDS.get(key)
            if row is None:
                raise _Unsupported(key)
            part = row(self, value, schema)
            if part is not None:
                parts.append((key, *part))
        tests = [test for _, test, _ in parts if test is not None]
        if not tests:
            return _ALWAYS
        explains = tuple(explain for _, _, explain in parts)

        def explain(value, path, out):
            # In the schema's key order, as jsonschema yields them.
            for each in explains:
                each(value, path, out)

        sure = _sure_types(schema["type"]) if [key for key, _, _ in parts] == ["type"] else frozenset()
        keyword_tests = tuple((key, test) for key, test, _ in parts if test is not None)
        return _Node(all_of(tests), explain, sure, schema, keyword_tests)


_ALWAYS = _Node(None, None)


def _never(value) -> bool:
    return False


def _explain_false(value, path, out):
    # jsonschema reports a ``false`` schema at its parent's path: ``Validator.descend`` yields that error
    # before it prepends the path step (jsonschema 4.26, validators.py). Same path, same message.
    out.append(Error(path[:-1], None, None, value, False))


def _failing(keyword: str, test: Test, keyword_value, schema) -> Explain:
    """An explanation that reports ``keyword`` once when ``test`` fails."""

    def explain(value, path, out):
        if not test(value):
            out.append(Error(path, keyword, keyword_value, value, schema))

    return explain


# ---- types, as jsonschema's draft 2020-12 TypeChecker: bool is never a number; 1.0 is an integer ----

def _is_number(value) -> bool:
    kind = type(value)
    if kind is int or kind is float:
        return True
    return not isinstance(value, bool) and isinstance(value, Number)


_PLAIN_NUMBERS = frozenset({int, float})


def _is_integer(value) -> bool:
    kind = type(value)
    if kind is int:
        return True
    if isinstance(value, float):
        return value.is_integer()
    return not isinstance(value, bool) and isinstance(value, int)


_CLASSES = {"string": str, "object": dict, "array": list, "boolean": bool}


def _type_test(names: list[str]) -> Test | None:
    classes = tuple(_CLASSES[name] for name in names if name in _CLASSES)
    null = "null" in names
    number = _is_number if "number" in names else _is_integer if "integer" in names else None
    if not null and not classes:
        return number
    if not null and number is None:
        return lambda value: isinstance(value, classes)
    if not null:
        check = cast(Test, number)
        return lambda value: isinstance(value, classes) or check(value)
    return lambda value: value is None or isinstance(value, classes) or (number is not None and number(value))


def _sure_types(types) -> frozenset:
    """The Python types whose every value has one of these JSON types (a float may not be an integer)."""
    exact: dict[str, set[type]] = {"string": {str}, "object": {dict}, "array": {list}, "boolean": {bool},
                                   "null": {type(None)}, "number": {int, float}, "integer": {int}}
    found: set[type] = set()
    for name in [types] if isinstance(types, str) else types:
        found |= exact[name]
    return frozenset(found)


def _type(compiler, types, schema) -> tuple:
    test = _type_test([types] if isinstance(types, str) else list(types))
    return test, _failing("type", cast(Test, test), types, schema)


# ---- values ----

def _unbool(value, true=object(), false=object()):
    if value is True:
        return true
    if value is False:
        return false
    return value


def _equal(one, two) -> bool:
    """JSON equality, as jsonschema's ``_utils.equal``: 1 == 1.0, but True != 1, also inside arrays and objects."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return one == two
    if isinstance(one, Sequence) and isinstance(two, Sequence):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two))
    if isinstance(one, Mapping) and isinstance(two, Mapping):
        return len(one) == len(two) and all(key in two and _equal(value, two[key]) for key, value in one.items())
    return _unbool(one) == _unbool(two)


def _enum(compiler, choices, schema) -> tuple:
    if all(isinstance(choice, str) for choice in choices):
        strings = frozenset(choices)  # a string equals only a string, so a set lookup says the same

        def test(value):
            return isinstance(value, str) and value in strings
    else:
        def test(value):
            return any(_equal(choice, value) for choice in choices)
    return test, _failing("enum", test, choices, schema)


def _const(compiler, const, schema) -> tuple:
    if isinstance(const, str):
        def test(value):
            return isinstance(value, str) and value == const
    else:
        def test(value):
            return _equal(value, const)
    return test, _failing("const", test, const, schema)


def _format(compiler, name, schema) -> tuple | None:
    check = compiler.formats.get(name)
    if check is None:
        return None  # jsonschema's FormatChecker passes formats it has no checker for
    return check, _failing("format", check, name, schema)


# ---- numbers and lengths; ``not value < limit`` rather than ``value >= limit`` so NaN passes, as there ----

def _minimum(compiler, limit, schema) -> tuple:
    def test(value):
        if type(value) in _PLAIN_NUMBERS:
            return not value < limit
        return not _is_number(value) or not value < limit
    return test, _failing("minimum", test, limit, schema)


def _maximum(compiler, limit, schema) -> tuple:
    def test(value):
        if type(value) in _PLAIN_NUMBERS:
            return not value > limit
        return not _is_number(value) or not value > limit
    return test, _failing("maximum", test, limit, schema)


def _exclusive_minimum(compiler, limit, schema) -> tuple:
    def test(value):
        if type(value) in _PLAIN_NUMBERS:
            return not value <= limit
        return not _is_number(value) or not value <= limit
    return test, _failing("exclusiveMinimum", test, limit, schema)


def _exclusive_maximum(compiler, limit, schema) -> tuple:
    def test(value):
        if type(value) in _PLAIN_NUMBERS:
            return not value >= limit
        return not _is_number(value) or not value >= limit
    return test, _failing("exclusiveMaximum", test, limit, schema)


def _min_length(compiler, limit, schema) -> tuple:
    def test(value):
        return not isinstance(value, str) or not len(value) < limit
    return test, _failing("minLength", test, limit, schema)


def _max_length(compiler, limit, schema) -> tuple:
    def test(value):
        return not isinstance(value, str) or not len(value) > limit
    return test, _failing("maxLength", test, limit, schema)


def _pattern(compiler, pattern, schema) -> tuple:
    try:
        search = re.compile(pattern).search  # jsonschema calls re.search(pattern, value)
    except (re.error, TypeError):
        raise _Unsupported(pattern) from None

    def test(value):
        return not isinstance(value, str) or search(value) is not None
    return test, _failing("pattern", test, pattern, schema)


def _min_items(compiler, limit, schema) -> tuple:
    def test(value):
        return not isinstance(value, list) or not len(value) < limit
    return test, _failing("minItems", test, limit, schema)


def _max_items(compiler, limit, schema) -> tuple:
    def test(value):
        return not isinstance(value, list) or not len(value) > limit
    return test, _failing("maxItems", test, limit, schema)


# ---- objects and arrays ----

def _properties(compiler, properties, schema) -> tuple | None:
    """``properties``, and ``additionalProperties: false`` beside it: both in one walk over the payload."""
    closed = schema.get("additionalProperties") is False
    children = tuple((name, compiler.compile(subschema)) for name, subschema in properties.items())
    checked = tuple((name, node) for name, node in children if node.test is not None)
    if not checked and not closed:
        return None
    # name -> (types that surely pass, test), or None for a property that accepts anything
    table = {name: None if node.test is None else (node.sure, node.test) for name, node in children}
    find = table.get
    count = len(table)
    extra = object()

    def test(value):
        if not isinstance(value, dict):
            return True
        if len(value) <= count:
            for name, item in value.items():
                entry = find(name, extra)
                if entry is extra:
                    if closed:
                        return False
                elif entry is not None and type(item) not in entry[0] and not entry[1](item):
                    return False
            return True
        if closed:
            return False  # more keys than properties: one of them is extra
        for name, node in checked:  # a long open payload: walk the schema's properties instead
            if name in value:
                item = value[name]
                if type(item) not in node.sure and not node.test(item):
                    return False
        return True

    def explain(value, path, out):
        # In the schema's order, as jsonschema: errors of two ``false`` properties share a path, and only
        # this order tells them apart.
        if isinstance(value, dict):
            for name, node in checked:
                if name in value:
                    item = value[name]
                    if type(item) not in node.sure and not node.test(item):
                        node.explain(item, path + (name,), out)

    return test, explain


def _additional_properties(compiler, additional, schema) -> tuple | None:
    known = frozenset(schema.get("properties", {}))
    if additional is False:
        def closed(value):
            return not isinstance(value, dict) or value.keys() <= known
        # Beside ``properties``, whose test already rejects extra keys, only the explanation is needed.
        return None if "properties" in schema else closed, _failing("additionalProperties", closed, additional, schema)
    node = compiler.compile(additional)
    if node.test is None:
        return None
    check = node.test

    def test(value):
        if not isinstance(value, dict):
            return True
        for name, item in value.items():
            if name not in known and not check(item):
                return False
        return True

    def explain(value, path, out):
        if isinstance(value, dict):
            for name, item in value.items():
                if name not in known and not check(item):
                    node.explain(item, path + (name,), out)

    return test, explain


def _required(compiler, names, schema) -> tuple | None:
    if not names:
        return None
    wanted = frozenset(names)

    def test(value):
        return not isinstance(value, dict) or value.keys() >= wanted

    def explain(value, path, out):
        if isinstance(value, dict):
            for name in names:  # one error per missing name, in the keyword's order
                if name not in value:
                    out.append(Error(path, "required", names, value, schema, name))

    return test, explain


def _items(compiler, items, schema) -> tuple | None:
    if items is False:
        def empty(value):
            return not isinstance(value, list) or not value
        return empty, _failing("items", empty, items, schema)
    node = compiler.compile(items)
    if node.test is None:
        return None
    check = node.test

    def test(value):
        if not isinstance(value, list):
            return True
        for item in value:
            if not check(item):
                return False
        return True

    def explain(value, path, out):
        if isinstance(value, list):
            for index, item in enumerate(value):
                if not check(item):
                    node.explain(item, path + (index,), out)

    return test, explain


def _any_of(compiler, schemas, schema) -> tuple | None:
    nodes = [compiler.compile(each) for each in schemas]
    if any(node.test is None for node in nodes):
        return None  # a member that accepts everything
    tests = tuple(node.test for node in nodes)

    def test(value):
        for each in tests:
            if each(value):
                return True
        return False

    # jsonschema reports anyOf itself, once, at the value (its ``context`` holds the members' errors).
    return test, _failing("anyOf", test, schemas, schema)


def _not(compiler, negated, schema) -> tuple:
    node = compiler.compile(negated)
    check = node.test

    def test(value):
        return check is not None and not check(value)

    return test, _failing("not", test, negated, schema)


# One row per supported keyword: compile(compiler, keyword value, the schema holding it) -> (test, explain),
# or None when the keyword can never fail.
KEYWORDS: dict[str, Callable] = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    "format": _format,
    "minimum": _minimum,
    "maximum": _maximum,
    "exclusiveMinimum": _exclusive_minimum,
    "exclusiveMaximum": _exclusive_maximum,
    "minLength": _min_length,
    "maxLength": _max_length,
    "pattern": _pattern,
    "properties": _properties,
    "additionalProperties": _additional_properties,
    "required": _required,
    "items": _items,
    "minItems": _min_items,
    "maxItems": _max_items,
    "anyOf": _any_of,
    "not": _not,
}


# ---- ``is_valid`` as one generated function, for the per-call path ----

_NUMBERS = frozenset({int, float})
# ``not x < limit`` rather than ``x >= limit``, as in the closures, so that NaN passes.
_FAILS_IF = {"minimum": "<", "maximum": ">", "exclusiveMinimum": "<=", "exclusiveMaximum": ">=",
             "minLength": "<", "maxLength": ">"}
_BUILTIN = {str: "str", int: "int", float: "float", bool: "bool", dict: "dict", list: "list"}


def _inline(keyword: str, value, sure: frozenset | None) -> bool:
    """Whether ``_Writer.shortcut`` writes ``keyword`` out, for values of the classes in ``sure`` (None: any).

    A limit is compared only with plain numbers, a length or pattern read only from a plain str: what the
    closures do for those classes, and nothing else reaches the expression.
    """
    if keyword == "type" or keyword == "format":
        return True
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return sure is not None and sure <= _NUMBERS and type(value) in _NUMBERS
    if keyword in ("minLength", "maxLength", "pattern"):
        return sure == {str}
    if keyword == "enum":
        return all(isinstance(choice, str) for choice in value)
    return False


def _generate(compiler: _Compiler, node: _Node, closure: Callable) -> tuple[Callable, str] | None:
    """``(is_valid, its source)`` for an object schema, equivalent to ``closure``; None to keep the closure."""
    writer = _Writer(compiler)
    try:
        lines = writer.function(node)
        if lines is None:
            return None
        source = "\n".join(lines) + "\n"
        is_valid = define(source, "is_valid", {"_closure": closure, **writer.constants}, "<schema>")
    except (SyntaxError, RecursionError, MemoryError):  # a source too big or too deep for Python's compiler
        return None
    return is_valid, source


class _Writer:
    """Writes the source of ``is_valid`` for a compiled object schema, binding every schema value it uses."""

    def __init__(self, compiler: _Compiler):
        self.compiler = compiler
        self.constants: dict[str, object] = {}

    def bind(self, value, prefix: str) -> str:
        name = f"_{prefix}{len(self.constants)}"
        self.constants[name] = value
        return name

    def function(self, node: _Node) -> list[str] | None:
        """The lines of ``def is_valid(v)``, or None for a schema that does not accept objects."""
        schema = node.schema
        types = schema.get("type", "object")
        if "object" not in ([types] if isinstance(types, str) else types):
            return None  # only an object has keys and properties to write out
        lines = ["def is_valid(v):",
                 "    if type(v) is not dict:",
                 "        return _closure(v)"]  # arrays, scalars and subclasses of dict: the closure's answer
        required = dict.fromkeys(schema.get("required", ()))  # a set in the keyword's order
        properties = schema.get("properties", {})
        closed = schema.get("additionalProperties") is False
        unlisted = [name for name in required if name not in properties]
        if closed and unlisted:
            return lines + ["    return False"]  # a required key that is not a property: missing, or extra
        for name in unlisted:
            lines += [f"    if {self.bind(name, 'k')} not in v:", "        return False"]
        # For a dict, ``type`` (which includes "object") passes; ``required``, ``properties`` and a false
        # ``additionalProperties`` are written out here. Any other keyword keeps its closure.
        for keyword, test in node.tests:
            if keyword not in ("type", "required", "properties") and not (keyword == "additionalProperties" and closed):
                lines += [f"    if not {self.bind(test, 't')}(v):", "        return False"]
        if closed:
            # Every key must be a property: ``n`` counts the keys plus the properties absent, and is the number
            # of properties when no key is left over. Cheaper than comparing key sets (``v.keys() <= known``),
            # since each property is looked up anyway and payloads carry most of them.
            lines.append("    n = len(v)")
        for name, subschema in properties.items():
            lines += self.property(name, self.compiler.compile(subschema), name in required, closed)
        lines.append(f"    return n == {self.bind(len(properties), 'c')}" if closed else "    return True")
        return lines

    def property(self, name, node: _Node, required: bool, counted: bool) -> list[str]:
        """Lines that return False when the property ``name`` is missing and required, or present and rejected.

        When ``counted``, an absent property adds one to ``n``.
        """
        checked = node.test is not None
        if not (checked or required or counted):
            return []
        key = self.bind(name, "k")
        check = self.check(node, key) if checked else []
        if required:
            return [f"    if {key} not in v:", "        return False"] + [f"    {line}" for line in check]
        if not checked:
            return [f"    if {key} not in v:", "        n += 1"]
        lines = [f"    if {key} in v:"] + [f"        {line}" for line in check]
        if counted:
            lines += ["    else:", "        n += 1"]
        return lines

    def check(self, node: _Node, key: str) -> list[str]:
        """Lines, not indented, that return False when ``node`` rejects ``v[key]``."""
        test = self.bind(node.test, "t")
        if node.sure:  # only ``type``: read the value where it is used, once in the common case
            value = f"v[{key}]"
            return [f"if not ({self.one_of(node.sure, value)}) and not {test}({value}):", "    return False"]
        shortcut = self.shortcut(node)
        fails = f"not {test}(x)" if shortcut is None else f"not ({shortcut}) and not {test}(x)"
        return [f"x = v[{key}]", f"if {fails}:", "    return False"]

    def shortcut(self, node: _Node) -> str | None:
        """An expression over ``x`` true only for values ``node`` accepts, for the common leaves; or None.

        It need not be true for every value the node accepts: the property's closure decides the others
        (a float where an integer goes, a subclass of str).
        """
        schema = node.schema
        if not node.tests:  # a ``false`` schema
            return None
        sure = _sure_types(schema["type"]) if "type" in schema else None
        if not all(_inline(keyword, schema[keyword], sure) for keyword, _ in node.tests):
            return None
        parts = [] if sure is None else [self.one_of(sure, "x")]
        for keyword, test in node.tests:
            value = schema[keyword]
            if keyword in _FAILS_IF:
                measured = "len(x)" if keyword in ("minLength", "maxLength") else "x"
                parts.append(f"not {measured} {_FAILS_IF[keyword]} {self.bind(value, 'c')}")
            elif keyword == "pattern":
                parts.append(f"{self.bind(re.compile(value).search, 'c')}(x) is not None")
            elif keyword == "enum":
                # ``in`` a set needs a hashable value; a str is one, and only a str equals a str.
                guard = "" if sure == {str} else "type(x) is str and "
                parts.append(f"{guard}x in {self.bind(frozenset(value), 'c')}")
            elif keyword == "format":
                parts.append(f"{self.bind(test, 'f')}(x)")  # the checker itself, as the closure calls it
        return " and ".join(parts)

    def one_of(self, classes: frozenset, value: str) -> str:
        """``type(x) is str``, or ``type(x) in _c3``: true only for values of these exact classes."""
        if classes == {type(None)}:
            return f"{value} is None"
        if len(classes) == 1 and next(iter(classes)) in _BUILTIN:
            return f"type({value}) is {_BUILTIN[next(iter(classes))]}"
        return f"type({value}) in {self.bind(classes, 'c')}"


# ---- jsonschema's sentences (``_keywords.py``), built only when asked for ----

def _shown(value) -> str:
    try:
        return repr(value)
    except (ValueError, RecursionError):  # an int over 4300 digits; a value nested deeper than the stack
        return f"<{type(value).__name__}>"


def _sentence(error: Error) -> str:
    keyword, limit = error.validator, error.validator_value
    if keyword == "required":
        return f"{error.detail!r} is a required property"
    if keyword == "const":
        return f"{limit!r} was expected"
    if keyword == "additionalProperties":
        extras = sorted(set(error.instance) - set(error.schema.get("properties", {})), key=str)
        verb = "was" if len(extras) == 1 else "were"
        return f"Additional properties are not allowed ({', '.join(repr(each) for each in extras)} {verb} unexpected)"
    if keyword == "items":
        extra = len(error.instance)
        rest = _shown(error.instance if extra != 1 else error.instance[0])
        return f"Expected at most 0 items but found {extra} extra: {rest}"
    value = _shown(error.instance)
    if keyword is None:
        return f"False schema does not allow {value}"
    if keyword == "anyOf":
        return f"{value} is not valid under any of the given schemas"
    if keyword == "not":
        return f"{value} should not be valid under {limit!r}"
    if keyword == "type":
        types = [limit] if isinstance(limit, str) else limit
        return f"{value} is not of type {', '.join(repr(each) for each in types)}"
    if keyword == "enum":
        return f"{value} is not one of {limit!r}"
    if keyword == "format":
        return f"{value} is not a {limit!r}"
    if keyword == "pattern":
        return f"{value} does not match {limit!r}"
    too = {
        "minimum": f"is less than the minimum of {limit!r}",
        "maximum": f"is greater than the maximum of {limit!r}",
        "exclusiveMinimum": f"is less than or equal to the minimum of {limit!r}",
        "exclusiveMaximum": f"is greater than or equal to the maximum of {limit!r}",
        "minLength": "should be non-empty" if limit == 1 else "is too short",
        "maxLength": "is expected to be empty" if limit == 0 else "is too long",
        "minItems": "should be non-empty" if limit == 1 else "is too short",
        "maxItems": "is expected to be empty" if limit == 0 else "is too long",
    }
    return f"{value} {too[keyword]}"
