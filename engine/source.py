"""Read a YAML rule file into plain Python values plus the position of every value.

Lint reports each problem at FILE:LINE:COL, so values are built here from the parser's events
rather than by ``yaml.safe_load``, which forgets positions. Building from events keeps only a
few integers per value (no node tree), never recurses (a file nested 3,000 levels deep is a
problem, not a RecursionError), and counts what aliases repeat (a "billion laughs" file is a
problem, not a gigabyte). Scalars are still resolved and constructed by ``SafeLoader``'s tables:
no tag can run code.
"""
from __future__ import annotations

import json
from array import array
from functools import cached_property
from typing import Any

import yaml  # type: ignore[import-untyped]
from yaml.events import (  # type: ignore[import-untyped]
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from .diagnostics import Problem
from .integers import any_size
from .scalar_positions import positions, value_start

Key = tuple  # a path into the document, e.g. ("mappings", 0, "trigger")

#: Containers may nest this deep. Rule files nest a dozen levels; every later stage (the schema
#: check, the mapping compiler) walks values recursively, so the limit keeps them off Python's.
MAX_DEPTH = 100

#: Aliases may repeat, in all, this many values plus ten per value written in the file: a merge
#: of shared defaults into every mapping fits; aliases of aliases that multiply (a "billion
#: laughs") do not, and are refused before anything walks them.
ALIAS_ALLOWANCE = 100_000
ALIAS_FACTOR = 10

# How a scalar was written, for mapping positions inside it; CONTAINER marks a mapping or sequence.
_STYLES = {None: 0, "'": 1, '"': 2, "|": 3, ">": 4}
_STYLE_NAMES = {code: name for name, code in _STYLES.items()}
CONTAINER = -1

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Scalar tags SafeLoader constructs as plain values; any other tag is refused.
_SCALAR_TAGS = {"tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
                "tag:yaml.org,2002:float", _STR_TAG, "tag:yaml.org,2002:timestamp",
                "tag:yaml.org,2002:binary"}


class Source:
    """A parsed rule file: its data and where each value came from.

    Positions are kept per container (see :class:`_Builder`), so the cost is a few integers per
    value; lines of the text are split only when a problem is located.
    """

    def __init__(self, file: str, text: str):
        self.file = file
        self.text = text
        self.data: Any = None
        self.problems: list[Problem] = []
        # id(container) -> its entries' positions: for a dict (key line, key column, value line,
        # value column, style) per key in order, for a list (line, column, style) per item; 0-based.
        self._positions: dict[int, array] = {}
        #: (line, column), 0-based, of each unquoted value JSON would read otherwise than YAML 1.1 does
        #: (``010`` YAML's 8, ``1:30`` its 90, ``1e3`` its text, ``yes`` its true): (the text, YAML's value).
        self.unlike_json: dict[tuple[int, int], tuple[str, Any]] = {}

    @cached_property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def position(self, path: Key, *, key: bool = False) -> tuple[int, int]:
        """1-based line and column of the value at ``path`` (or of its key); the nearest parent if unknown."""
        found, _ = self._entry(path)
        if found is None:
            return 1, 1
        line, column, key_line, key_column, _ = found
        if key and key_line >= 0:
            return key_line + 1, key_column + 1
        return line + 1, column + 1

    def _entry(self, path: Key) -> tuple[tuple[int, int, int, int, int] | None, bool]:
        """(line, column, key line, key column, style) of the deepest value along ``path`` (-1: no key),
        and whether that value is the one at ``path`` itself."""
        container, found, depth = self.data, None, 0
        for step in path:
            table = self._positions.get(id(container))
            if table is None:
                break
            if isinstance(container, dict):
                if step not in container:
                    break
                index = _index_of(container, step) * 5
                key_line, key_column, line, column, style = table[index:index + 5]
                found = (line, column, key_line, key_column, style)
            elif isinstance(container, list) and isinstance(step, int) and 0 <= step < len(container):
                line, column, style = table[step * 3:step * 3 + 3]
                found = (line, column, -1, -1, style)
            else:
                break
            container = container[step]
            depth += 1
        return found, depth == len(path)

    def problem(self, path: Key, problem: Problem, *, key: bool = False) -> Problem:
        line, column = self.position(path, key=key)
        return self.at(line, column, problem)

    def at(self, line: int, column: int, problem: Problem) -> Problem:
        lines = self.lines
        source_line = lines[line - 1] if 0 < line <= len(lines) else None
        return problem.located(self.file, line, column, source_line)

    def inside(self, path: Key, line: int, column: int, problem: Problem) -> Problem:
        """Locate a problem found at (line, column) inside the string value at ``path``.

        Triggers and JMESPath expressions report positions relative to their own text;
        this maps them onto the file, for plain, quoted and block scalars alike.
        """
        found, complete = self._entry(path)
        value = self._value(path)
        if found is None or not complete or found[4] == CONTAINER or not isinstance(value, str):
            return self.problem(path, problem)
        start_line, start_column, _, _, style = found
        start_line, start_column = value_start(self.lines, start_line, start_column, value)
        offset = sum(len(text) + 1 for text in value.split("\n")[:line - 1]) + column - 1
        places = positions(self.lines, start_line, start_column, _STYLE_NAMES[style], value)
        if places and 0 <= offset < len(places):
            row, col = places[offset]
            return self.at(row + 1, col + 1, problem)
        if places and offset == len(places):  # just past the end: "the expression ends too early"
            row, col = places[-1]
            return self.at(row + 1, col + 2, problem)
        file_line, file_column = _map_into_scalar(start_line, start_column, _STYLE_NAMES[style], value,
                                                  self.lines, line, column)
        return self.at(file_line, file_column, problem)

    def _value(self, path: Key) -> Any:
        value = self.data
        try:
            for step in path:
                value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
        return value


def _as_yaml(value: Any) -> str:
    """A key YAML read as another value than text, as YAML writes that value: true, null, 1.0."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def _index_of(mapping: dict, key: Any) -> int:
    for index, candidate in enumerate(mapping):
        if candidate == key:
            return index
    raise KeyError(key)


def _map_into_scalar(start_line: int, start_column: int, style: str | None, value: str, lines: list[str],
                     line: int, column: int) -> tuple[int, int]:
    value_lines = value.split("\n")
    offset = sum(len(text) + 1 for text in value_lines[: line - 1]) + column - 1
    if style in ("|", ">"):
        # Content starts on the line after the indicator; find its indentation.
        row = start_line + 1
        while row < len(lines) and not lines[row].strip():
            row += 1
        indent = len(lines[row]) - len(lines[row].lstrip()) if row < len(lines) else 0
        if style == "|":
            return start_line + 1 + line, indent + column
        col0 = indent
    else:
        row, col0 = start_line, start_column + (1 if style in ('"', "'") else 0)
    # Plain, quoted and folded scalars join source lines with single spaces.
    while row < len(lines):
        content = lines[row][col0:] if row == start_line or style == ">" else lines[row].lstrip()
        lead = col0 if row == start_line or style == ">" else len(lines[row]) - len(lines[row].lstrip())
        if offset <= len(content):
            return row + 1, lead + offset + 1
        offset -= len(content) + 1
        row += 1
        if style != ">":
            col0 = 0
    return start_line + 1, start_column + 1


class LimitExceeded(Exception):
    """The file nests too deeply (SY005) or its aliases repeat too much (SY004); parsing stops there."""

    def __init__(self, code: str, message: str, mark):
        super().__init__(message)
        self.code = code
        self.message = message
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """SafeLoader read event by event, so positions survive construction."""


# libyaml parses about ten times faster. Its error messages are terser, so a file it refuses
# is parsed again by the pure-Python parser, whose messages the docs show.
_FastLoader = type("_FastLoader", (yaml.CSafeLoader,), {}) if getattr(yaml, "__with_libyaml__", False) else None


def parse(file: str, text: str) -> Source:
    """Parse ``text``; YAML errors become SY001 problems (SY004, SY005 for limits), never exceptions."""
    if _FastLoader is not None:
        source = _parse(file, text, _FastLoader)
        if not any(problem.code == "SY001" for problem in source.problems):
            return source
    return _parse(file, text, _Loader)


def _parse(file: str, text: str, loader_class) -> Source:
    source = Source(file, text)
    try:
        loader = loader_class(text)
    except yaml.reader.ReaderError as error:  # the pure-Python reader checks every character at once
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        source.problems.append(source.at(line, column, Problem(
            "SY001", f"YAML syntax error: the character U+{error.character:04X} cannot be in a YAML file "
                     "(a control character); write it as an escape inside double quotes")))
        return source
    try:
        source.data = _Builder(loader, source).document()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(part) for part in (error.context, error.problem) if part)
        lines = source.lines
        hint = _yaml_hint(message, lines[line - 1] if 0 < line <= len(lines) else "")
        source.problems.append(source.at(line, column, Problem("SY001", f"YAML syntax error: {message}{hint}")))
        source.data = None
    except yaml.YAMLError as error:
        source.problems.append(source.at(1, 1, Problem("SY001", f"YAML syntax error: {error}")))
        source.data = None
    except LimitExceeded as error:
        source.problems.append(source.at(error.mark.line + 1, error.mark.column + 1,
                                         Problem(error.code, error.message)))
        source.data = None
    finally:
        loader.dispose()
    if source.data is None:
        source._positions.clear()
    return source


#: PyYAML's words for the mistakes people make most, and what to look for. Checked in order.
_YAML_HINTS = (
    ("'\\t'", "a tab indents this line; YAML indents with spaces only"),
    ("expected ',' or '}'", "inside { } a value that holds ': ' or ',' needs quotes"),
    ("expected ',' or ']'", "inside [ ] a value that holds ': ' or ',' needs quotes"),
    ("mapping values are not allowed here",
     "this line's indentation differs from the keys it belongs with (one space off?), "
     "or a value holds ': ' and needs quotes"),
    ("expected <block end>", "this line's indentation differs from the keys it belongs with (one space off?)"),
    ("could not find expected ':'", "a key needs ': ' after it, or this line is indented one space off"),
    ("did not find expected key", "this line's indentation differs from the keys above it (one space off?)"),
    ("did not find expected '-'", "the items of a list line up; this one is indented differently"),
    ("tag '!", "YAML reads a value that starts with '!' as a tag: quote it, as in "
               "trigger: '!contains(event, \"Test\")'"),
)


def _yaml_hint(message: str, line: str) -> str:
    """A plain-words hint for a YAML syntax error, from its message and the line it points to."""
    if "\t" in line[:len(line) - len(line.lstrip())]:
        return "; hint: a tab indents this line; YAML indents with spaces only"
    for words, hint in _YAML_HINTS:
        if words in message:
            return f"; hint: {hint}"
    return ""


class _Container:
    """A mapping or sequence being built: its value, its entries' positions, its size with aliases."""

    __slots__ = ("anchor", "key", "key_mark", "merges", "positions", "size", "start_mark", "value")

    def __init__(self, value, start_mark, anchor):
        self.value = value
        self.positions = array("i")
        self.size = 1
        self.key: Any = _NO_KEY
        self.key_mark = None
        self.merges: list | None = None
        self.start_mark = start_mark
        self.anchor = anchor


_NO_KEY = object()


class _Builder:
    """Plain values from a loader's events, with a loop and a stack instead of recursion."""

    def __init__(self, loader, source: Source):
        self.loader = loader
        self.source = source
        # Anchor -> (value, size, line, column, style) of the anchored value; size counts aliases expanded.
        self.anchors: dict[str, tuple[Any, int, int, int, int]] = {}
        # Scalar text -> its value: a plain scalar is resolved once, and short quoted texts repeated
        # (``"properties.order_id"`` in every mapping) are stored once.
        self.plain: dict[str, Any] = {}
        self.unlike_json: set[str] = set()  # the plain texts of Source.unlike_json
        self.quoted: dict[str, str] = {}
        self.written = 0    # values written out in the file
        self.repeated = 0   # values aliases repeat

    def document(self) -> Any:
        loader = self.loader
        loader.get_event()  # stream start
        if loader.check_event(StreamEndEvent):
            return None
        start = loader.get_event()  # document start
        data = self.value()
        loader.get_event()  # document end
        if not loader.check_event(StreamEndEvent):
            extra = loader.get_event()
            raise yaml.composer.ComposerError("expected a single document in the stream", start.start_mark,
                                              "but found another document", extra.start_mark)
        loader.get_event()  # stream end
        return data

    def value(self) -> Any:
        """The next complete value: its events, up to the end of the outermost container."""
        get_event = self.loader.get_event
        positions = self.source._positions
        stack: list[_Container] = []
        while True:
            event = get_event()
            kind = type(event)
            mark = event.start_mark
            if kind is ScalarEvent:
                self.written += 1
                value, size, style = self.scalar(event), 1, _STYLES.get(event.style, 0)
                if event.anchor is not None:
                    self.anchors[event.anchor] = (value, 1, mark.line, mark.column, style)
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                is_mapping = kind is MappingStartEvent
                tag = event.tag
                if tag is not None and tag != "!" and tag != (_MAP_TAG if is_mapping else _SEQ_TAG):
                    # Collections are built here, not by SafeLoader: a tag could name Python code.
                    raise yaml.constructor.ConstructorError(None, None, f"tag {tag!r} is not allowed", mark)
                if len(stack) >= MAX_DEPTH:
                    raise LimitExceeded("SY005", f"the file nests more than {MAX_DEPTH} levels deep", mark)
                self.written += 1
                stack.append(_Container({} if is_mapping else [], mark, event.anchor))
                continue
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                done = stack.pop()
                if done.merges is not None:
                    self.merge(done)
                value, size, style, mark = done.value, done.size, CONTAINER, done.start_mark
                positions[id(value)] = done.positions
                if done.anchor is not None:
                    self.anchors[done.anchor] = (value, size, mark.line, mark.column, CONTAINER)
            elif kind is AliasEvent:
                anchored = self.anchors.get(event.anchor)
                if anchored is None:
                    raise yaml.composer.ComposerError(None, None, f"found undefined alias {event.anchor!r}", mark)
                value, size, line, column, style = anchored
                self.repeated += size
                allowed = ALIAS_ALLOWANCE + ALIAS_FACTOR * self.written
                if self.repeated > allowed:
                    raise LimitExceeded("SY004", f"aliases repeat more than {allowed:,} values, the most this "
                                        f"file may repeat; write the values out or alias less deeply", mark)
                if stack:
                    self.add(stack[-1], value, size, line, column, style, mark)
                    continue
                return value
            else:
                raise yaml.composer.ComposerError(None, None, f"unexpected {kind.__name__}", mark)
            if not stack:
                if value is _MERGE:
                    raise yaml.constructor.ConstructorError(None, None, "'<<' merges a mapping in; it is not a value",
                                                            mark)
                return value
            self.add(stack[-1], value, size, mark.line, mark.column, style, mark)

    def add(self, container: _Container, value, size: int, line: int, column: int, style: int, mark) -> None:
        """Put ``value`` (written at ``line``, ``column``) into ``container``: an item, a key, or a key's value."""
        container.size += size
        target = container.value
        if value is _MERGE and (type(target) is list or container.key is not _NO_KEY):
            raise yaml.constructor.ConstructorError(None, None, "'<<' merges a mapping in; it is not a value", mark)
        if type(target) is list:
            target.append(value)
            container.positions.extend((line, column, style))
            return
        if container.key is _NO_KEY:  # this value is a key
            if not isinstance(value, (str, int, float, bool)) and value is not None and value is not _MERGE:
                raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value", mark)
            container.key, container.key_mark = value, mark
            return
        key, key_mark = container.key, container.key_mark
        container.key = _NO_KEY
        if key is _MERGE:
            if container.merges is None:
                container.merges = []
            container.merges.append((value, key_mark))
            return
        if key in target:
            earlier = next(existing for existing in target if existing == key)
            if isinstance(key, str):
                message = f"duplicate key '{key}': the later value would silently win"
            elif type(earlier) is type(key):
                alike = " (YAML reads on, yes and true alike, and off, no and false)" if isinstance(key, bool) else ""
                message = (f"duplicate key {_as_yaml(key)} as YAML reads both keys{alike}: the later value would "
                           "silently win; quote them")
            else:
                message = f"the keys {_as_yaml(earlier)} and {_as_yaml(key)} are one key as YAML reads them: quote them"
            self.source.problems.append(self.source.at(key_mark.line + 1, key_mark.column + 1,
                                                       Problem("SY002", message)))
            index = _index_of(target, key) * 5
            container.positions[index:index + 5] = array("i", (key_mark.line, key_mark.column, line, column, style))
        else:
            container.positions.extend((key_mark.line, key_mark.column, line, column, style))
        target[key] = value

    def merge(self, container: _Container) -> None:
        """Apply ``<<`` merge keys as SafeLoader does: the mapping's own keys win, then earlier merges."""
        merged: dict = {}
        merged_positions = array("i")
        for value, mark in container.merges or ():
            sources = value if isinstance(value, list) else [value]
            for source in sources:
                if not isinstance(source, dict):
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", container.start_mark,
                        "expected a mapping or list of mappings for merging", mark)
                table = self.source._positions.get(id(source), array("i"))
                for index, (key, item) in enumerate(source.items()):
                    if key not in merged:
                        merged[key] = item
                        merged_positions.extend(table[index * 5:index * 5 + 5])
        own, own_positions = container.value, container.positions
        for index, (key, item) in enumerate(own.items()):
            entry = own_positions[index * 5:index * 5 + 5]
            if key in merged:
                at = _index_of(merged, key) * 5
                merged_positions[at:at + 5] = entry
            else:
                merged_positions.extend(entry)
            merged[key] = item
        container.value, container.positions = merged, merged_positions

    def scalar(self, event: ScalarEvent) -> Any:
        tag, text = event.tag, event.value
        if tag is None or tag == "!":
            if not event.implicit[0]:  # quoted or block: text
                return self.quoted.setdefault(text, text) if len(text) < 64 else text
            known = self.plain.get(text, _NO_KEY)
            if known is not _NO_KEY:
                if text in self.unlike_json:
                    self._unlike(event, known)
                return known
            tag = self.loader.resolve(yaml.ScalarNode, text, (True, False))
            if tag == _MERGE_TAG:
                return _MERGE
            value = self.construct(tag, event) if tag in _SCALAR_TAGS and tag != _STR_TAG else text
            self.plain[text] = value
            if _unlike_json(text, value):
                self.unlike_json.add(text)
                self._unlike(event, value)
            return value
        if tag not in _SCALAR_TAGS:
            raise yaml.constructor.ConstructorError(None, None, f"tag {tag!r} is not allowed",
                                                    event.start_mark)  # type: ignore[arg-type]
        return text if tag == _STR_TAG else self.construct(tag, event)

    def _unlike(self, event: ScalarEvent, value: Any) -> None:
        mark = event.start_mark
        assert mark is not None  # the parser marks every event
        self.source.unlike_json[mark.line, mark.column] = event.value, value

    def construct(self, tag: str, event: ScalarEvent) -> Any:
        # libyaml's marks stand in for pure-Python ones here, as they do inside PyYAML itself.
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark,  # type: ignore[arg-type]
                               event.style)
        if len(event.value) > 4000:  # an integer this long is read as an event's would be, not a traceback
            try:
                with any_size():
                    return yaml.SafeLoader.yaml_constructors[tag](self.loader, node)
            except ValueError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"a number of {len(event.value):,} characters is longer than any value can be",
                    event.start_mark) from None  # type: ignore[arg-type]
        return yaml.SafeLoader.yaml_constructors[tag](self.loader, node)


_INF = float("inf")


def _unlike_json(text: str, value: Any) -> bool:
    """Whether JSON reads the unquoted scalar ``text`` otherwise than YAML 1.1 read it (``value``)."""
    if value is None or isinstance(value, bool):
        return isinstance(value, bool) and text.lower() not in ("true", "false")  # True: what its author means
    if isinstance(value, str) and not (text[:1].isdigit() or text[:1] == "-"):
        return False
    if not isinstance(value, (str, int, float)) or len(text) > 4000 or value != value or value in (_INF, -_INF):
        # a date: reported as such; an integer past json's digits: read as JSON reads it; .nan and .inf:
        # YAML's only spelling of what an event's NaN and Infinity are
        return False
    try:
        read = json.loads(text)
    except ValueError:
        return not isinstance(value, str)
    return type(read) is not type(value) or read != value


class _Merge:
    """The ``<<`` key: the value after it is merged into the mapping, not stored under it."""

    def __repr__(self) -> str:
        return "<<"


_MERGE = _Merge()
