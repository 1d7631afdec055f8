"""Read a YAML rule file into plain Python values plus the position of every value.

Lint reports each problem at FILE:LINE:COL, so we keep PyYAML's node marks instead of
calling ``yaml.safe_load`` directly. Construction still goes through ``SafeLoader``:
no tags can run code.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from .diagnostics import Problem

Key = tuple  # a path into the document, e.g. ("mappings", 0, "trigger")


@dataclass
class Source:
    """A parsed rule file: its data and where each value came from."""

    file: str
    text: str
    data: object = None
    nodes: dict = field(default_factory=dict)      # path -> yaml node of the value
    key_nodes: dict = field(default_factory=dict)  # path -> yaml node of the mapping key
    problems: list = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def position(self, path: Key, *, key: bool = False) -> tuple[int, int]:
        """1-based line and column of the value at ``path`` (or of its key); the nearest parent if unknown."""
        table = self.key_nodes if key else self.nodes
        path = tuple(path)
        while path:
            node = table.get(path) or self.nodes.get(path)
            if node is not None:
                return node.start_mark.line + 1, node.start_mark.column + 1
            path = path[:-1]
        return 1, 1

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
        node = self.nodes.get(tuple(path))
        if node is None or not isinstance(node, yaml.ScalarNode):
            return self.problem(path, problem)
        file_line, file_column = _map_into_scalar(node, self.lines, line, column)
        return self.at(file_line, file_column, problem)


def _map_into_scalar(node, lines: list[str], line: int, column: int) -> tuple[int, int]:
    start = node.start_mark
    value_lines = node.value.split("\n")
    offset = sum(len(text) + 1 for text in value_lines[: line - 1]) + column - 1
    if node.style in ("|", ">"):
        # Content starts on the line after the indicator; find its indentation.
        row = start.line + 1
        while row < len(lines) and not lines[row].strip():
            row += 1
        indent = len(lines[row]) - len(lines[row].lstrip()) if row < len(lines) else 0
        if node.style == "|":
            return start.line + 1 + line, indent + column
        col0 = indent
    else:
        row, col0 = start.line, start.column + (1 if node.style in ('"', "'") else 0)
    # Plain, quoted and folded scalars join source lines with single spaces.
    while row < len(lines):
        content = lines[row][col0:] if row == start.line or node.style == ">" else lines[row].lstrip()
        lead = col0 if row == start.line or node.style == ">" else len(lines[row]) - len(lines[row].lstrip())
        if offset <= len(content):
            return row + 1, lead + offset + 1
        offset -= len(content) + 1
        row += 1
        if node.style != ">":
            col0 = 0
    return start.line + 1, start.column + 1


class _Loader(yaml.SafeLoader):
    """SafeLoader used node by node, so positions survive construction."""


# libyaml parses about ten times faster (a 1,000-mapping file: 1.5 s -> 0.15 s). Its error
# messages are terser, so a file it refuses is parsed again by the pure-Python loader,
# whose messages the docs show.
_FastLoader = type("_FastLoader", (yaml.CSafeLoader,), {}) if getattr(yaml, "__with_libyaml__", False) else None


def parse(file: str, text: str) -> Source:
    """Parse ``text``; YAML errors become SY001 problems, never exceptions."""
    if _FastLoader is not None:
        source = _parse(file, text, _FastLoader)
        if not any(problem.code == "SY001" for problem in source.problems):
            return source
    return _parse(file, text, _Loader)


def _parse(file: str, text: str, loader_class) -> Source:
    source = Source(file, text)
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        source.data = None if node is None else _construct(loader, node, (), source)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(part) for part in (error.context, error.problem) if part)
        source.problems.append(source.at(line, column, Problem("SY001", f"YAML syntax error: {message}")))
        source.data = None
    except yaml.YAMLError as error:
        source.problems.append(source.at(1, 1, Problem("SY001", f"YAML syntax error: {error}")))
    finally:
        loader.dispose()
    return source


_PLAIN_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}


def _construct(loader: _Loader, node, path: Key, source: Source):
    source.nodes[path] = node
    expected_tag = _PLAIN_TAGS.get(type(node))
    if expected_tag and node.tag != expected_tag:
        # Collections are built here, not by SafeLoader, so refuse tags ourselves: a tag could name Python code.
        raise yaml.constructor.ConstructorError(None, None, f"tag {node.tag!r} is not allowed", node.start_mark)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<` merge keys
        result = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value", key_node.start_mark)
            if key in result:
                source.problems.append(
                    source.at(key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                              Problem("SY002", f"duplicate key '{key}': the later value would silently win"))
                )
            source.key_nodes[path + (key,)] = key_node
            result[key] = _construct(loader, value_node, path + (key,), source)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, path + (index,), source) for index, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
