"""One JMESPath expression: parsed and checked once, then evaluated against many events.

This module owns the JMESPath problems (SY201 syntax, SY202 unknown function or wrong number of
arguments), the fast paths for plain dotted paths and ``coalesce`` (:func:`direct`), and
:class:`MappingError`. It knows nothing
about how fields nest; that is :mod:`engine.mapping.fields`.
"""
from __future__ import annotations

import copy
import difflib
import functools
import itertools
import json
from collections.abc import Callable
from typing import Any

import jmespath  # type: ignore[import-untyped]
from jmespath.exceptions import (  # type: ignore[import-untyped]
    EmptyExpressionError,
    IncompleteExpressionError,
    JMESPathError,
    JMESPathTypeError,
    LexerError,
    ParseError,
)
from jmespath.lexer import Lexer  # type: ignore[import-untyped]
from jmespath.visitor import TreeInterpreter  # type: ignore[import-untyped]

from engine.diagnostics import ERROR, WARNING, Problem
from engine.mapping.functions import FUNCTION_NAMES, OPTIONS, arity

Path = tuple  # keys (str) and list indexes (int) from the top of the payload down to one value

#: ``ParsedResult.search`` builds a new interpreter on every call; one shared interpreter is
#: about three times faster, and safe across threads: it keeps no state between visits.
_INTERPRETER = TreeInterpreter(OPTIONS)


class MappingError(Exception):
    """A field could not be evaluated for one event; the engine reports it as that event's error."""

    def __init__(self, path: Path, message: str):
        super().__init__(path, message)
        self.path = tuple(path)
        self.message = message

    def __str__(self) -> str:
        return f"{format_path(self.path)}: {self.message}" if self.path else self.message


def format_path(path: Path) -> str:
    """``("data", "items", 0, "sku")`` -> ``data.items[0].sku``."""
    parts = []
    for step in path:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        else:
            parts.append(f".{step}" if parts else str(step))
    return "".join(parts)


class Expression:
    """A compiled expression; ``evaluate(event)`` gives its value and raises only MappingError."""

    __slots__ = ("alternatives", "evaluate", "is_literal", "keys", "text")

    def __init__(self, text: str, parsed: jmespath.parser.ParsedResult, path: Path = ()):
        self.text = text
        node = parsed.parsed
        #: True for a JMESPath literal (`` `5` ``, ``'text'``): its value never depends on the event.
        self.is_literal = node["type"] == "literal"
        #: The keys of a plain dotted path (``("context", "traits", "email")``), else None.
        self.keys = plain_keys(node)
        #: For ``coalesce`` of plain dotted paths, the keys of each path, else None.
        self.alternatives = coalesced_keys(node)
        if self.is_literal:
            self.evaluate = constant(node["value"])
        else:
            self.evaluate = direct(node) or _called(text, node, path) or _interpreted(text, parsed, path)

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


def parse_expression(text: str) -> tuple[jmespath.parser.ParsedResult | None, list[Problem]]:
    """Parse and check ``text``; problems are located on line 1, column = offset in the text + 1."""
    parsed, problems = _parse_once(text)
    return parsed, list(problems)


@functools.lru_cache(maxsize=4096)
def _parse_once(text: str) -> tuple[jmespath.parser.ParsedResult | None, tuple[Problem, ...]]:
    """Rule sets repeat expressions (``properties.order_id`` in every mapping): each is parsed once.

    What is shared is immutable: jmespath's parsed tree (only read) and frozen problems.
    """
    parsed, problems = _parse(text)
    return parsed, tuple(problems)


def _parse(text: str) -> tuple[jmespath.parser.ParsedResult | None, list[Problem]]:
    try:
        parsed = jmespath.compile(text)
        problems = _check_functions(text, parsed.parsed) + (_missing_commas(text) if "(" in text else [])
        if "&" in text:
            problems += _stray_references(text, parsed.parsed)
    except EmptyExpressionError:
        return None, [Problem("SY201", "empty JMESPath expression; write a path such as properties.total")]
    except ParseError as error:
        return None, [Problem("SY201", _syntax_message(text, error), column=error.lex_position + 1)]
    except JMESPathError as error:
        return None, [Problem("SY201", str(error))]
    except RecursionError:
        return None, [Problem("SY201", "the expression nests too deeply")]
    return (None if any(p.severity == ERROR for p in problems) else parsed), problems


def compile_expression(text: str, path: Path = ()) -> tuple[Callable[[Any], Any], list[Problem]]:
    """Compile one expression to ``evaluate(event)``; with problems, it returns None (omits the field)."""
    parsed, problems = parse_expression(text)
    if parsed is None:
        return constant(None), problems
    return Expression(text, parsed, path).evaluate, problems


def constant(value: Any) -> Callable[[Any], Any]:
    """An evaluator that ignores the event.

    Objects and arrays are copied for each event, so that a payload handed to an adapter never
    shares state with the next event's payload.
    """
    if isinstance(value, (dict, list)):
        return lambda event: copy.deepcopy(value)
    return lambda event: value


def direct(node: dict) -> Callable[[Any], Any] | None:
    """A closure that evaluates ``node`` without the interpreter, for the common shapes, else None.

    The shapes: a plain dotted path (``context.traits.email``), ``@``, a literal, and
    ``coalesce(...)`` of those. Each gives exactly what the JMESPath interpreter gives: a
    key looked up on anything that is not an object (an array, a string, null) is null,
    and so is every step after it.
    """
    keys = plain_keys(node)
    if keys is not None:
        return _walk(keys)
    kind = node["type"]
    if kind == "current":
        return lambda event: event
    if kind == "literal":
        return constant(node["value"])
    if kind == "function_expression" and node["value"] == "coalesce":
        parts = [direct(child) for child in node["children"]]
        if all(part is not None for part in parts):
            return _coalesce([part for part in parts if part is not None])
    return None


def plain_keys(node: dict) -> tuple[str, ...] | None:
    """The keys of a plain dotted path such as ``context.traits.email``, else None."""
    if node["type"] == "field":
        return (node["value"],)
    if node["type"] == "subexpression" and all(child["type"] == "field" for child in node["children"]):
        return tuple(child["value"] for child in node["children"])
    return None


def coalesced_keys(node: dict) -> tuple[tuple[str, ...], ...] | None:
    """The keys of each path of ``coalesce(a.b, c, ...)`` when every argument is a plain dotted path, else None."""
    if node["type"] != "function_expression" or node["value"] != "coalesce" or not node["children"]:
        return None
    alternatives = tuple(keys for child in node["children"] if (keys := plain_keys(child)) is not None)
    return alternatives if len(alternatives) == len(node["children"]) else None


def _walk(keys: tuple[str, ...]) -> Callable[[Any], Any]:
    # Straight-line versions for the usual one to three keys. Among JSON values only an object
    # has `.get`, so AttributeError means "not an object here" (null, as in JMESPath).
    if len(keys) == 1:
        (a,) = keys

        def walk(event):
            try:
                return event.get(a)
            except AttributeError:
                return None
    elif len(keys) == 2:
        a, b = keys

        def walk(event):
            try:
                return event.get(a).get(b)
            except AttributeError:
                return None
    elif len(keys) == 3:
        a, b, c = keys

        def walk(event):
            try:
                return event.get(a).get(b).get(c)
            except AttributeError:
                return None
    else:
        def walk(event):
            value = event
            try:
                for key in keys:
                    value = value.get(key)
            except AttributeError:
                return None
            return value
    return walk


def _coalesce(parts: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """``coalesce`` (see :mod:`engine.mapping.functions`): the first value neither null nor ''."""
    def evaluate(event):
        for part in parts:
            value = part(event)
            if value is not None and value != "":
                return value
        return None
    return evaluate


def _called(text: str, node: dict, path: Path) -> Callable[[Any], Any] | None:
    """``f(...)`` whose arguments are plain paths, literals, ``@``, ``coalesce`` of those or such calls
    (``trim(concat(traits.first_name, ' ', traits.last_name))``): the arguments are evaluated without
    the interpreter's walk, the function is called through it (so its argument types are checked as
    the interpreter checks them); a failure is a MappingError worded as :func:`_interpreted` words it.
    Else None."""
    call = _call(node)
    if call is None:
        return None

    def evaluate(event):
        try:
            return call(event)
        except Exception as error:  # events are arbitrary data; one bad event must not stop a run
            raise MappingError(path, f"{_runtime_message(error)} (in {text})") from error

    return evaluate


def _call(node: dict) -> Callable[[Any], Any] | None:
    if node["type"] != "function_expression":
        return None
    arguments = []
    for child in node["children"]:
        argument = direct(child) or _call(child)
        if argument is None:
            return None
        arguments.append(argument)
    name, call_function = node["value"], OPTIONS.custom_functions.call_function  # the interpreter's own
    return lambda event: call_function(name, [argument(event) for argument in arguments])


def _interpreted(text: str, parsed: jmespath.parser.ParsedResult, path: Path) -> Callable[[Any], Any]:
    """Evaluate with the shared interpreter; any failure becomes a MappingError at ``path``."""
    node = parsed.parsed
    visit = _INTERPRETER.visit

    def evaluate(event):
        try:
            return visit(node, event)
        except Exception as error:  # events are arbitrary data; one bad event must not stop a run
            raise MappingError(path, f"{_runtime_message(error)} (in {text})") from error

    return evaluate


def _runtime_message(error: Exception) -> str:
    if isinstance(error, JMESPathTypeError):
        expected = " or ".join(error.expected_types)
        return f"{error.function_name}() expects {expected}, got {error.actual_type} {_preview(error.current_value)}"
    if isinstance(error, JMESPathError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _syntax_message(text: str, error: ParseError) -> str:
    if isinstance(error, LexerError):
        if error.message.startswith("Unclosed"):
            detail = f"the {error.lexer_value[0]} opened here is never closed"
        elif error.message.startswith("Unknown token"):
            detail = f'unexpected "{error.lexer_value}"'
            if error.lexer_value == "=":
                detail += '; compare with "=="'
        else:
            detail = error.message
    elif isinstance(error, IncompleteExpressionError) or error.token_type == "EOF":
        detail = "the expression ends too early"
    else:
        detail = f'unexpected "{error.token_value}"'
    if _looks_like_text(text):
        # Quoted twice: YAML takes a value's outer single quotes away, JMESPath needs them.
        detail += f"; for the text itself write \"'{text}'\" or {{$literal: ...}}"
    return detail


def _looks_like_text(text: str) -> bool:
    """True for what is likely a literal string written bare, such as a URL or ``Order Completed``."""
    return not any(mark in text for mark in "'\"`()[]{}=<>!|&@*?,") and any(mark in text for mark in " :/")


def _check_functions(text: str, node: dict) -> list[Problem]:
    """SY202 for each call of an unknown function, or with a number of arguments it does not take."""
    calls = list(_function_calls(node))
    if not calls:
        return []
    positions = _call_positions(text)
    problems = []
    for call in calls:
        name = call["value"]
        starts = positions.get(name)
        column = starts.pop(0) + 1 if starts else 1
        message = _call_problem(name, len(call["children"])) or _fixed_failure(call)
        if message:
            problems.append(Problem("SY202", message, column=column))
    return problems


def _small(value: Any) -> bool:
    """A literal lint may call a function with: a scalar, a text of at most 1,000 characters (so that a call
    such as replace() makes at most a million), an array or object of at most 1,000 characters as JSON
    (``to_unix(`[1]`)`` fails as surely as ``to_unix(`true`)``)."""
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str):
        return len(value) <= 1000
    try:
        return len(json.dumps(value)) <= 1000
    except (TypeError, ValueError, RecursionError):
        return False


def _fixed_failure(call: dict) -> str | None:
    """Why a call whose arguments are all small literals (``lower(`5`)``) fails, as it would each time it runs;
    None if it does not. Only such calls are made: another could take any time or memory."""
    if not all(isinstance(child, dict) and child.get("type") == "literal" and _small(child["value"])
               for child in call["children"]):
        return None
    try:
        _INTERPRETER.visit(call, {})
    except (JMESPathError, ValueError, TypeError, OverflowError, RecursionError) as error:
        return f"{call['value']}() fails each time it runs, its arguments fixed in the rule file: {error}"
    return None


def _stray_references(text: str, node: dict) -> list[Problem]:
    """SY201 for ``&expr`` anywhere but as a function's argument: its value is the library's own object,
    which a payload would carry as that object's text (``<..._Expression object at 0x7f...>``)."""
    if not any(_references_outside_calls(node)):
        return []
    return [Problem("SY201", "an &expression is the argument of a function such as sort_by(items, &price); "
                             "anywhere else it has no value", column=_stray_reference_column(text))]


def _stray_reference_column(text: str) -> int:
    """The column of the first ``&`` that does not start a function's argument (1 if none is found)."""
    opened: list[bool] = []  # per open bracket: whether it is a function call's
    previous: dict = {}
    for token in Lexer().tokenize(text):
        kind = token["type"]
        if kind == "expref" and not (opened and opened[-1] and previous.get("type") in ("lparen", "comma")):
            return token["start"] + 1
        if kind in ("lparen", "lbracket", "lbrace", "filter", "flatten"):
            opened.append(kind == "lparen" and previous.get("type") == "unquoted_identifier")
            if kind == "flatten":
                opened.pop()  # [] opens nothing
        elif kind in ("rparen", "rbracket", "rbrace") and opened:
            opened.pop()
        previous = token
    return 1


def _references_outside_calls(node: dict, in_call: bool = False):
    """True for each ``expref`` node that is not an argument of a function."""
    if node.get("type") == "expref" and not in_call:
        yield True
    calling = node.get("type") == "function_expression"
    for child in node.get("children", ()):
        if isinstance(child, dict):
            yield from _references_outside_calls(child, calling)


def _call_problem(name: str, count: int) -> str | None:
    limits = arity(name)
    if limits is None:
        close = difflib.get_close_matches(name, FUNCTION_NAMES, n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        return f'unknown function "{name}"{hint}'
    fewest, most = limits
    if fewest <= count and (most is None or count <= most):
        return None
    if most is None:
        wanted = f"at least {fewest}"
    elif most == fewest:
        wanted = str(fewest)
    else:
        wanted = f"{fewest} to {most}"
    plural = "" if wanted == "1" else "s"
    return f"{name}() takes {wanted} argument{plural}, got {count}"


def _function_calls(node: dict):
    """Function-call nodes in the order their names appear in the text."""
    children = [child for child in node.get("children", ()) if isinstance(child, dict)]
    if node["type"] == "filter_projection":
        # Stored as [left, right, condition]; the text reads left[?condition].right.
        children = [children[0], children[2], children[1]]
    if node["type"] == "function_expression":
        yield node
    for child in children:
        yield from _function_calls(child)


# Tokens that end an argument, and tokens that start one: an argument that ends and one that starts
# with no comma between them is two arguments to the jmespath library, which does not ask for commas.
_ENDS = frozenset({"unquoted_identifier", "quoted_identifier", "literal", "raw_string", "rparen", "rbracket",
                   "rbrace", "current", "number"})
_STARTS = frozenset({"unquoted_identifier", "quoted_identifier", "literal", "raw_string", "current", "expref",
                     "not"})
_OPENS = {"lparen": "rparen", "lbracket": "rbracket", "lbrace": "rbrace", "filter": "rbracket"}


def _missing_commas(text: str) -> list[Problem]:
    """SY203 where a function's arguments are not separated by a comma: ``coalesce(userId anonymousId)``."""
    problems = []
    inside: list[str] = []  # what each open bracket is: "call" for a function's parentheses
    previous: dict | None = None
    for token in Lexer().tokenize(text):
        kind = token["type"]
        if (inside and inside[-1] == "call" and previous is not None and previous["type"] in _ENDS
                and kind in _STARTS):
            problems.append(Problem(
                "SY203", f"no comma before \"{token['value']}\": it is read as another argument of the "
                         f"function; write a comma between arguments", WARNING, column=token["start"] + 1))
        if kind in _OPENS:
            call = kind == "lparen" and previous is not None and previous["type"] == "unquoted_identifier"
            inside.append("call" if call else kind)
        elif kind in ("rparen", "rbracket", "rbrace") and inside:
            inside.pop()
        previous = token
    return problems


def _call_positions(text: str) -> dict[str, list[int]]:
    """Offsets of each ``name(`` in the text, per name, in order (the AST keeps no positions)."""
    tokens = list(Lexer().tokenize(text))
    positions: dict[str, list[int]] = {}
    for token, following in itertools.pairwise(tokens):
        if token["type"] == "unquoted_identifier" and following["type"] == "lparen":
            positions.setdefault(token["value"], []).append(token["start"])
    return positions
