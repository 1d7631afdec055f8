"""Trigger text -> syntax tree (:mod:`engine.trigger.nodes`), or SY101/SY102 problems.

Owns the one Lark parser of the process (built on first use from ``grammar/trigger.lark``)
and the translation of Lark's exceptions into located problems with "did you mean"
suggestions. It does not decide what an operator means; the compiler does.
"""
from __future__ import annotations

import contextlib
import difflib
import functools
import io
import re
from dataclasses import replace

import lark
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedToken

from engine import cache
from engine.diagnostics import Problem
from engine.paths import parse_path, unquote
from engine.resources import resource
from engine.trigger import nodes
from engine.trigger.errors import TriggerError, problem_at
from engine.trigger.operators import WORD_SPELLINGS, numeric

# Real triggers nest a handful of levels. The transformer, the compiled closures and explain
# all recurse once per level, so a limit keeps absurd input from reaching Python's stack limit.
MAX_DEPTH = 100


_OPTIONS = {"parser": "lalr", "start": "trigger", "propagate_positions": True, "maybe_placeholders": False}


@functools.cache
def _lark() -> Lark:
    """The parser, from the cache when it holds one built from this grammar by this Lark (see engine.cache)."""
    grammar = (resource("grammar") / "trigger.lark").read_text(encoding="utf-8")
    entry = cache.key(grammar, repr(sorted(_OPTIONS.items())), lark.__version__)
    saved = cache.read("trigger-parser", entry)
    if saved is not None:
        with contextlib.suppress(Exception):  # a damaged entry: build the parser anew
            return Lark.load(io.BytesIO(saved))
    parser = Lark(grammar, **_OPTIONS)
    data = io.BytesIO()
    parser.save(data)
    cache.write("trigger-parser", entry, data.getvalue())
    return parser


def parse(text: str) -> nodes.Node:
    """Parse a trigger; raise :class:`TriggerError` with the first syntax problem."""
    # An LALR parser reports every syntax error as one of these two (the end of the text
    # is an unexpected `$END` token).
    try:
        tree = _lark().parse(text)
    except UnexpectedCharacters as error:
        raise TriggerError([_bad_character(error, text)]) from None
    except UnexpectedToken as error:
        raise TriggerError([_bad_token(error, text)]) from None
    return _TO_NODES.transform(tree, text)


# --- tree -> nodes -------------------------------------------------------------------------


def _span(meta) -> nodes.Span:
    return nodes.Span(meta.start_pos, meta.end_pos, meta.line, meta.column)


def _token_span(token: Token) -> nodes.Span:
    return nodes.Span(_known(token.start_pos), _known(token.end_pos), _known(token.line), _known(token.column))


def _known(position: int | None) -> int:
    """A position Lark's types call optional and its lexer always sets."""
    assert position is not None
    return position


class _ToNodes:
    """Lark tree -> nodes; one method per grammar rule of the same name, called children first.

    A plain walk rather than a ``lark.Transformer``: Lark wraps each method again on every call,
    which cost more than the conversion itself (triggers are parsed by the ten thousand in a
    large rule set). The walk checks the depth as it goes; see :data:`MAX_DEPTH`.
    """

    def transform(self, tree: Tree, text: str, depth: int = 1):
        if depth > MAX_DEPTH:
            message = f"the trigger nests more than {MAX_DEPTH} levels deep"
            raise TriggerError([problem_at("SY101", message, text, tree.meta.line, tree.meta.column)])
        children = [self.transform(child, text, depth + 1) if isinstance(child, Tree) else child
                    for child in tree.children]
        try:
            return getattr(self, tree.data)(tree.meta, children)
        except _NumberTooLong as error:
            token = error.token
            message = f"a number of {len(token.value):,} characters is longer than any value can be"
            raise TriggerError([problem_at("SY101", message, text, _known(token.line), _known(token.column))]) from None

    def trigger(self, meta, children):
        return children[0]

    def any_of(self, meta, children):
        return nodes.AnyOf(span=_span(meta), children=tuple(children[::2]),
                           joints=tuple(_token_span(t) for t in children[1::2]))

    def all_of(self, meta, children):
        return nodes.AllOf(span=_span(meta), children=tuple(children[::2]),
                           joints=tuple(_token_span(t) for t in children[1::2]))

    def negation(self, meta, children):
        return nodes.Negation(span=_span(meta), child=children[1])

    def paren(self, meta, children):
        inner = children[0]
        if isinstance(inner, (nodes.AllOf, nodes.AnyOf)):
            return replace(inner, grouped=True)
        return inner

    def always(self, meta, children):
        return nodes.Always(span=_span(meta))

    def group(self, meta, children):
        keyword, *members = children
        kind = nodes.AllOf if keyword.type == "ALL" else nodes.AnyOf
        return kind(span=_span(meta), children=tuple(members), grouped=True)

    def condition(self, meta, children):
        path, spelling, *literal = children
        return nodes.Condition(span=_span(meta), path=parse_path(path.value), spelling=spelling,
                               literal=_literal(literal[0]) if literal else None)

    def call(self, meta, children):
        *name, path, literal = children
        spelling = "".join(token.value.lower() for token in name) + "()"
        return nodes.Condition(span=_span(meta), path=parse_path(path.value), spelling=spelling,
                               literal=_literal(literal))

    def binary_op(self, meta, children):
        return " ".join(token.value.lower() for token in children)

    unary_op = binary_op

    def list(self, meta, children):
        return nodes.Literal(span=_span(meta), value=[_literal(item).value for item in children])


_TO_NODES = _ToNodes()

_DECODE = {
    "STRING": unquote,
    "NUMBER": numeric,
    "TRUE": lambda _text: True,
    "FALSE": lambda _text: False,
    "NULL": lambda _text: None,
}


class _NumberTooLong(Exception):
    """A number literal past the digits any value may hold (engine.integers.MAX_DIGITS)."""

    def __init__(self, token: Token):
        self.token = token


def _literal(item: Token | nodes.Literal) -> nodes.Literal:
    """A value token as a Literal (a list arrives already built)."""
    if isinstance(item, nodes.Literal):
        return item
    value = _DECODE[item.type](item.value)
    if value is None and item.type == "NUMBER":  # numeric() reads every NUMBER token but one too long
        raise _NumberTooLong(item)
    return nodes.Literal(span=_token_span(item), value=value)


# --- Lark exceptions -> problems -----------------------------------------------------------

_SYMBOLS = {
    "EQ": "=", "EQEQ": "==", "NE": "!=", "LT": "<", "LE": "<=", "GT": ">", "GE": ">=", "BANG": "!",
    "LPAR": "(", "RPAR": ")", "COMMA": ",", "LSQB": "[", "RSQB": "]",
}
_VALUES = {"STRING", "NUMBER", "TRUE", "FALSE", "NULL", "LSQB"}
_OPERATOR_WORDS = {
    "IS", "DOES", "CONTAINS", "CONTAIN", "STARTS", "START", "ENDS", "END", "WITH",
    "LESS", "GREATER", "THAN", "EQUAL", "TO", "IN", "MATCHES", "MATCH", "EXISTS", "EXIST",
}
_NOT_KEYWORDS = {"PATH", "STRING", "NUMBER", "$END"}
_FUNCTIONS = ("ALL", "ANY", "contains", "match")
#: Operators spelt in one word that `is` cannot come before (`x is exists`).
_AFTER_IS_ALONE = {"exists", "contains", "matches", "in"}
_WORD = re.compile(r"(?:[^\W\d]|\$)[\w$-]*")


def _bad_character(error: UnexpectedCharacters, text: str) -> Problem:
    char = text[_known(error.pos_in_stream)]
    if char in "\"'":
        message = f"unterminated string: add the closing {char}"
    else:
        position = _known(error.pos_in_stream)
        allowed = set(error.allowed) - _closers_not_open(text[:position])
        message = f"unexpected character {char!r}; expected {_expected_phrase(allowed)}"
    return problem_at("SY101", message, text, error.line, error.column)


def _closers_not_open(before: str) -> set[str]:
    """The closing tokens the lexer allows that nothing before the error opened: it lists what any parser state
    with this lexer state takes (``x = 1 &&`` at the top level would be told ``,``, ``)`` or ``]``)."""
    depth = {"(": 0, "[": 0}
    for match in re.finditer(r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|[()\[\]]", before):
        token = match.group()
        if token in "([":
            depth[token] += 1
        elif token in ")]":
            depth["(" if token == ")" else "["] -= 1
    closed = set()
    if depth["("] <= 0:
        closed.add("RPAR")
    if depth["["] <= 0:
        closed.add("RSQB")
    if depth["("] <= 0 and depth["["] <= 0:
        closed.add("COMMA")
    return closed


def _bad_token(error: UnexpectedToken, text: str) -> Problem:
    # `accepts` replays the parser, so it excludes what LALR merely tolerates here (`,` outside a list).
    token, expected = error.token, set(error.accepts or error.expected)
    if token.type == "$END":
        return _early_end(text, expected)
    if token.type == "LPAR":
        return _bad_parenthesis(text, token, expected)
    line, column = token.line, token.column
    before = _word_before(text, _known(token.start_pos))
    if "EQ" in expected and before and before[0].lower() in ("and", "or"):
        # Where a condition starts, a bare `and`/`or` reads as a path, so the parser only
        # stumbles on the word after it: point at the doubled keyword instead.
        return problem_at("SY101", f"unexpected {before[0]!r}; expected a condition", text, *before[1:])
    word = token.value if _WORD.fullmatch(token.value) else None
    if word and before and before[0].lower() == "is" and word.lower() in _AFTER_IS_ALONE:
        # `x is exists`: an operator of its own after `is`, which takes a value or less/greater/not.
        return problem_at("SY102", f"'is {word}' is not an operator; write {word.lower()!r} alone", text, line, column)
    suggestion = _suggest(word, expected) if word else None
    if suggestion and word and suggestion.lower() != word.lower():
        unknown = "unknown " + _what(suggestion) if token.type == "PATH" else "unexpected"
        return problem_at("SY102", f"{unknown} {word!r}; did you mean {suggestion!r}?", text, line, column)
    if token.type == "PATH" and "EQ" in expected and before and before[0].lower() != "not" and \
            _closest(before[0], {"not": "not"}) and before[0] == text[before[2] - 1:].split()[0]:
        # `nto a = 1`: the misspelt `not` was read as the path, and the real path as its operator.
        return problem_at("SY102", f"unknown keyword {before[0]!r}; did you mean 'not'?", text, *before[1:])
    if "EQ" in expected or expected & _OPERATOR_WORDS:
        # `contains[1]`, `matches["a"]`: an operator run into a bracket was read as a path (or cut there).
        lead = _WORD.match(token.value)
        end = _known(token.end_pos)
        if lead and lead.group().upper() in _OPERATOR_WORDS and ("[" in token.value or text[end:end + 1] == "["):
            return problem_at("SY102", f"the operator {lead.group()!r} runs into '[': write a space after it",
                              text, line, column)
    if token.type == "PATH" and "EQ" in expected:
        return problem_at("SY102", f"unknown operator {word or token.value!r}; expected {_expected_phrase(expected)}",
                          text, line, column)
    if token.type == "PATH" and "STRING" in expected:
        return problem_at("SY101", f"expected a value; to compare with the text {word}, quote it: \"{word}\"",
                          text, line, column)
    return problem_at("SY101", f"unexpected {token.value!r}; expected {_expected_phrase(expected)}",
                      text, line, column)


def _what(suggestion: str) -> str:
    if suggestion in WORD_SPELLINGS or suggestion.upper() in _OPERATOR_WORDS:
        return "operator"
    return "keyword"


def _early_end(text: str, expected: set[str]) -> Problem:
    meaningful = re.sub(r"#[^\n]*", "", text)
    if not meaningful.strip():
        return problem_at("SY101", "empty trigger; write a condition, or `true` to match every event", text, 1, 1)
    end = len(text.rstrip())
    line = text.count("\n", 0, end) + 1
    column = end - (text.rfind("\n", 0, end) + 1) + 1
    return problem_at("SY101", f"the trigger ends too early; expected {_expected_phrase(expected)}",
                      text, line, column)


def _bad_parenthesis(text: str, token: Token, expected: set[str]) -> Problem:
    """`(` where it cannot go: usually a misspelt function such as `AL(...)` or `!(...)`."""
    before = _word_before(text, _known(token.start_pos))
    if "EQ" in expected and before:
        name, line, column = before
        close = _closest(name, {f.lower(): f for f in _FUNCTIONS})
        hint = f"did you mean {close!r}?" if close else "the functions are ALL, ANY, contains and match"
        return problem_at("SY102", f"unknown function {name!r}; {hint}", text, line, column)
    if expected == {"CONTAINS", "MATCH"}:
        return problem_at("SY101", "'!' negates only contains(...) and match(...); write `not (...)`",
                          text, _known(token.line), _known(token.column))
    return problem_at("SY101", f"unexpected '('; expected {_expected_phrase(expected)}", text,
                      _known(token.line), _known(token.column))


def _word_before(text: str, pos: int) -> tuple[str, int, int] | None:
    """The path-like word just before ``pos``, with its line and column."""
    # Read backwards from pos: a regular expression anchored at the end tried every start of a long run of
    # word characters, each to its end (5 s for 20,000 characters before a bad token).
    end = len(text[:pos].rstrip())
    start = end
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_$.-"):
        start -= 1
    while start < end and not (text[start] == "$" or text[start] == "_" or text[start].isalpha()):
        start += 1  # a word starts with a letter, _ or $
    if start == end:
        return None
    return text[start:end], text.count("\n", 0, start) + 1, start - (text.rfind("\n", 0, start) + 1) + 1


def _suggest(word: str, expected: set[str]) -> str | None:
    """The operator or keyword closest to ``word`` among those that could go here."""
    keywords = {name for name in expected if name not in _SYMBOLS and name not in _NOT_KEYWORDS}
    candidates = {name.lower(): name if name in ("ALL", "ANY") else name.lower() for name in keywords}
    if "EQ" in expected:
        candidates.update({spelling.replace(" ", ""): spelling for spelling in WORD_SPELLINGS})
        # `less than 10`, as Segment's interface names the operator: the spelling whose word after `is` it is.
        for spelling in sorted(WORD_SPELLINGS, key=len):
            if spelling.startswith("is ") and (first := spelling.split()[1]) not in ("not", "true", "false"):
                candidates.setdefault(first, spelling)
    return _closest(word, candidates)


def _closest(word: str, candidates: dict[str, str]) -> str | None:
    # Short words need a looser cut-off: "iz" is only 50% like "is".
    cutoff = 0.5 if len(word) <= 3 else 0.6
    found = difflib.get_close_matches(word.lower(), list(candidates), n=1, cutoff=cutoff)
    return candidates[found[0]] if found else None


def _expected_phrase(expected) -> str:
    expected = set(expected)
    if "EQ" in expected:
        return "an operator such as 'is', '=', 'contains', 'starts with', 'exists', 'in' or 'matches'"
    parts = []
    if "PATH" in expected and "NOT" in expected:
        parts.append("a condition")
        expected -= {"PATH", "NOT", "TRUE", "ALL", "ANY", "CONTAINS", "MATCH", "BANG", "LPAR"}
    elif "PATH" in expected:
        parts.append("a field path")
        expected.discard("PATH")
    if "STRING" in expected:
        parts.append("a value (a quoted string, a number, true, false, null or a [list])")
        expected -= _VALUES
    end = "$END" in expected
    expected.discard("$END")
    parts.extend(f"'{_SYMBOLS.get(name, name.lower())}'" for name in sorted(expected))
    if end:
        parts.append("the end of the trigger")
    if not parts:
        return "something else"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]
