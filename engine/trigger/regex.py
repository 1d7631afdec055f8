"""The regular expressions of ``matches``: run by RE2, so a search takes time linear in the text.

Python's ``re`` backtracks: ``"(a+)+$"`` against fifty ``a`` and a ``b`` never finishes, and one
such event would stop a run. RE2 (google-re2) never backtracks; the price is that it cannot do
what needs backtracking. RE2 compiles the pattern; when it refuses one, Python's parser says
whether it used what RE2 lacks by design (a backreference, a lookaround: :class:`Unsupported`,
SY108) or is invalid (``re.error`` with RE2's reason, SY103). Python's parser also finds the
nested quantifiers that would be slow in other engines (:func:`nested_quantifier`, SY109).

This module owns compiling and searching; it never reads events and never prints.
"""
from __future__ import annotations

import re
import warnings
from typing import Any

try:  # Python 3.11 moved sre_parse here; both are CPython's own parser of the syntax
    from re import _constants as _sre  # type: ignore[attr-defined]
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_constants as _sre  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

import re2  # type: ignore[import-untyped]
from re2 import _re2  # type: ignore[import-untyped]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False   # RE2 would print every refused pattern on stderr; the caller reports it
_OPTIONS.never_capture = True  # only "found or not" is asked
_UNANCHORED = re2._Anchor.UNANCHORED

_REPEATS = {_sre.MAX_REPEAT, _sre.MIN_REPEAT, getattr(_sre, "POSSESSIVE_REPEAT", _sre.MAX_REPEAT)}
_UNSUPPORTED = {
    _sre.GROUPREF: "a backreference", _sre.GROUPREF_EXISTS: "a conditional group (?(1)...)",
    _sre.ASSERT: "a lookahead or lookbehind", _sre.ASSERT_NOT: "a negative lookahead or lookbehind",
}


class Unsupported(ValueError):
    """A valid Python pattern that uses what RE2 cannot run (SY108)."""


class Regex:
    """A compiled pattern; ``search(text)`` is true when the pattern is found anywhere in ``text``.

    Immutable and thread-safe. A lone surrogate in ``text`` (an event may hold one) is searched
    as the three bytes Python would write for it, which no character class matches.
    """

    __slots__ = ("pattern", "_match")

    def __init__(self, pattern: str):
        compiled = _re2.RE2(as_re2(pattern).encode("utf-8", "surrogatepass"), _OPTIONS)
        if not compiled.ok():
            # Python's parser names what RE2 refused when it is a feature RE2 lacks by design.
            try:
                parsed = _parse(pattern)
            except re.error:
                parsed = ()
            for code, _ in _walk(parsed):
                if code in _UNSUPPORTED:
                    raise Unsupported(f"{_UNSUPPORTED[code]} needs backtracking, and patterns run in linear time "
                                      "here (RE2)")
            raise re.error(compiled.error().decode("utf-8", "replace"))
        self.pattern = pattern
        self._match = compiled.Match

    def search(self, text: str) -> bool:
        data = text.encode("utf-8", "surrogatepass")
        return self._match(_UNANCHORED, data, 0, len(data))[0][0] != -1

    def __reduce__(self):
        return Regex, (self.pattern,)

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"


_OPEN_REPEAT = re.compile(r"\{,([0-9]*)\}")
#: A group's opening that sets or clears flags: ``(?m:``, ``(?-m:``, ``(?i)``; ``(?:`` sets none.
_FLAG_GROUP = re.compile(r"\(\?([aiLmsux]*)(?:-([imsx]*))?([:)])")


def as_re2(pattern: str) -> str:
    """``pattern`` written so that RE2 reads it as Python's ``re`` does, where the two spell a thing apart:
    ``{,n}`` and ``{,}`` are ``{0,n}`` and ``{0,}`` (RE2 reads them as text), ``$`` is also found before a
    line break that ends the text (RE2's only at the very end; in ``(?m)`` the two agree), and ``\\Z`` is
    RE2's ``\\z``. Character classes are left as they are."""
    if "{" not in pattern and "$" not in pattern and "\\Z" not in pattern:
        return pattern
    out: list[str] = []
    multiline = [False]  # per open group: whether (?m) holds in it
    at, end, in_class = 0, len(pattern), False
    while at < end:
        char = pattern[at]
        if char == "\\" and at + 1 < end:
            escape = pattern[at:at + 2]
            out.append("\\z" if escape == "\\Z" and not in_class else escape)
            at += 2
        elif in_class:
            in_class = char != "]"
            out.append(char)
            at += 1
        elif char == "[":
            # A ] right after [ or [^ is one of the class's characters, not its end.
            opened = 2 if pattern.startswith("[^", at) else 1
            opened += pattern.startswith("]", at + opened)
            out.append(pattern[at:at + opened])
            at, in_class = at + opened, True
        elif char == "(":
            state, flags = multiline[-1], _FLAG_GROUP.match(pattern, at)
            if flags is not None:
                on, off, closing = flags.groups()
                state = (state or "m" in on) and not (off and "m" in off)
                out.append(flags.group())
                at = flags.end()
                if closing == ")":  # (?m) for the rest of the pattern
                    multiline[-1] = state
                    continue
            else:
                out.append(char)
                at += 1
            multiline.append(state)
        elif char == ")":
            if len(multiline) > 1:
                multiline.pop()
            out.append(char)
            at += 1
        elif char == "$" and not multiline[-1]:
            if pattern.startswith("\\n", at + 1) and pattern[at + 3:at + 4] not in ("?", "*", "+", "{"):
                # `$\n`: the line break that ends the text (`$\n?` and the like: the general form below)
                out.append("\\n\\z")
                at += 3
            else:
                out.append("(?:\\n?\\z)")
                at += 1
        elif char == "{" and (repeat := _OPEN_REPEAT.match(pattern, at)):
            out.append(f"{{0,{repeat.group(1)}}}")
            at = repeat.end()
        else:
            out.append(char)
            at += 1
    return "".join(out)


def nested_quantifier(pattern: str) -> bool:
    """True when a repeated part of ``pattern`` is itself only a repeat, as in ``(a+)+`` or ``(\\w+\\s?)*``.

    Such a part can split one stretch of text in exponentially many ways. RE2 runs the pattern in
    linear time all the same; the warning is for a reader who takes it to a backtracking engine.
    ``(\\.[0-9]+)*`` is not flagged: the ``.`` fixes where each repetition starts.
    """
    try:
        parsed = _parse(pattern)
    except re.error:
        return False
    return any(code in _REPEATS and value[1] > 1 and _only_repeats(value[2]) for code, value in _walk(parsed))


def _parse(pattern: str) -> Any:
    try:
        with warnings.catch_warnings():  # "Possible nested set" is about Python's future, not RE2's present
            warnings.simplefilter("ignore", FutureWarning)
            return _sre_parse.parse(pattern)
    except RecursionError:  # thousands of nested groups
        raise re.error("the pattern nests too deeply") from None


def _walk(parsed: Any):
    """Every (opcode, argument) of a parsed pattern, depth first."""
    for code, value in parsed:
        yield code, value
        if code in _REPEATS:
            yield from _walk(value[2])
        elif code == _sre.SUBPATTERN:
            yield from _walk(value[-1])
        elif code == _sre.BRANCH:
            for branch in value[1]:
                yield from _walk(branch)
        elif code in (_sre.ASSERT, _sre.ASSERT_NOT):
            yield from _walk(value[1])
        elif code == getattr(_sre, "ATOMIC_GROUP", None):
            yield from _walk(value)
        elif code == _sre.GROUPREF_EXISTS:
            yield from _walk(value[1])
            if value[2] is not None:
                yield from _walk(value[2])


def _only_repeats(parsed: Any) -> bool:
    """Whether ``parsed`` is made of nothing but optional parts and at least one unbounded repeat."""
    unbounded = False
    for code, value in parsed:
        if code == _sre.SUBPATTERN:
            value = value[-1]
        elif code == _sre.BRANCH:
            if any(_only_repeats(branch) for branch in value[1]):
                unbounded = True
                continue
            return False
        elif code in _REPEATS:
            if value[1] == _sre.MAXREPEAT:
                unbounded = True
            elif value[0] != 0:
                return False
            continue
        else:
            return False
        if _only_repeats(value):
            unbounded = True
        else:
            return False
    return unbounded
