"""Where each character of a YAML scalar's value was written in the file.

A trigger or an expression reports a problem at a column of its own text; YAML has already
turned the written scalar into that text (escapes, ``''``, lines folded into spaces, block
indentation removed). :func:`positions` walks the written scalar as YAML reads it and gives,
for each character of the value, its (line, column) in the file, 0-based; None when its reading
does not give back ``value`` exactly (a form it does not know), so the caller can fall back.
"""
from __future__ import annotations

import re

Position = tuple[int, int]

_ESCAPE_LENGTHS = {"x": 2, "u": 4, "U": 8}
_SIMPLE_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
                   "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85", "_": "\xa0",
                   "L": "\u2028", "P": "\u2029"}
_INDICATOR = re.compile(r"[|>]([1-9]?)[+-]?([1-9]?)")


def value_start(lines: list[str], line: int, column: int, value: str) -> Position:
    """Where a scalar ``value`` written at (``line``, ``column``) starts after its anchor and tag (``&t !!str``);
    an empty one is placed at them."""
    if not value:
        return line, column
    while line < len(lines) and column < len(lines[line]) and lines[line][column] in "&!":
        text = lines[line]
        while column < len(text) and not text[column].isspace():
            column += 1
        while column < len(text) and text[column] in " \t":
            column += 1
        if column == len(text) or text[column] == "#":  # the scalar itself is on a later line
            line += 1
            while line < len(lines) and not lines[line].strip():
                line += 1
            column = len(lines[line]) - len(lines[line].lstrip(" \t")) if line < len(lines) else 0
    return line, column


def positions(lines: list[str], line: int, column: int, style: str | None, value: str) -> list[Position] | None:
    """(line, column) of each character of ``value``, a scalar written at (``line``, ``column``) in ``style``."""
    if style in ("|", ">"):
        found = _block(lines, line, column, style, value)
    else:
        found = _flow(lines, line, column, style, value)
    if found is None:
        return None
    chars, places = found
    written = value.rstrip("\n") if style in ("|", ">") else value  # a block's final breaks are its chomping's
    if "".join(chars[:len(written)]) != written or not places:
        return None
    return places[:len(written)] + [places[len(written) - 1] if written else places[0]] * (len(value) - len(written))


def _flow(lines: list[str], row: int, column: int, style: str | None, value: str):
    """Plain, single- and double-quoted scalars: escapes read, line breaks folded as YAML folds them."""
    quote = style if style in ('"', "'") else None
    chars: list[str] = []
    places: list[Position] = []
    col = column + (1 if quote else 0)
    while row < len(lines) and len(chars) < len(value):
        text = lines[row]
        kept = len(chars)  # whitespace written after this is dropped if the line ends after it
        i = col
        while i < len(text):
            char = text[i]
            if quote and char == quote and not (quote == "'" and text[i + 1:i + 2] == "'"):
                return chars, places
            if quote == '"' and char == "\\":
                if i + 1 == len(text):  # an escaped line break: the lines join with nothing between
                    break
                read = _escape(text, i)
                if read is None:
                    return None
                escaped, width = read
                chars.append(escaped)
                places.append((row, i))
                i += width
                kept = len(chars)
                continue
            chars.append(char)
            places.append((row, i))
            i += 2 if quote == "'" and char == "'" else 1
            if char not in " \t":
                kept = len(chars)
        escaped_break = quote == '"' and i == len(text) - 1  # stopped at a backslash ending the line
        if not escaped_break:  # whitespace before a line break is not part of the value
            del chars[kept:], places[kept:]
        row += 1
        blank = 0
        while row < len(lines) and not lines[row].strip():
            blank += 1
            chars.append("\n")
            places.append((row, 0))
            row += 1
        if not blank and not escaped_break:
            chars.append(" ")
            places.append((row - 1, len(text)))
        if row < len(lines):
            col = len(lines[row]) - len(lines[row].lstrip(" \t"))
    return chars, places


def _escape(text: str, at: int) -> tuple[str, int] | None:
    """The character a double-quoted escape at ``at`` stands for, and how many characters it takes."""
    letter = text[at + 1]
    if letter in _ESCAPE_LENGTHS:
        digits = text[at + 2:at + 2 + _ESCAPE_LENGTHS[letter]]
        try:
            return chr(int(digits, 16)), 2 + len(digits)
        except ValueError:
            return None
    return (_SIMPLE_ESCAPES[letter], 2) if letter in _SIMPLE_ESCAPES else None


def _block(lines: list[str], row: int, column: int, style: str, value: str):
    """Literal (``|``) and folded (``>``) scalars: their lines from the content's indentation on."""
    indicator = _INDICATOR.match(lines[row], column) if row < len(lines) else None
    if indicator is None:
        return None
    digit = indicator.group(1) or indicator.group(2)
    start = row + 1
    if digit:
        indent = _parent_indent(lines[row]) + int(digit)
    else:
        first = next((text for text in lines[start:] if text.strip()), "")
        indent = len(first) - len(first.lstrip(" "))
    chars: list[str] = []
    places: list[Position] = []
    previous: str | None = None  # the last content line, for folding
    blank = 0
    for number in range(start, len(lines)):
        text = lines[number]
        if len(chars) >= len(value) or (text.strip() and len(text) - len(text.lstrip(" ")) < indent):
            break  # the scalar ended
        content = text[indent:]
        if not content.strip():
            blank += 1
            continue
        # Empty lines before the first content line are line breaks of the value, in both styles.
        chars.extend("\n" * blank if previous is None else _joint(style, previous, content, blank))
        places.extend([(number - 1, len(lines[number - 1]))] * (len(chars) - len(places)))
        blank = 0
        for offset, char in enumerate(content):
            chars.append(char)
            places.append((number, indent + offset))
        previous = content
    return chars, places


def _joint(style: str, previous: str, content: str, blank: int) -> str:
    """What joins two content lines with ``blank`` empty lines between: literal keeps every break; folded
    makes a lone break a space, keeps the empty lines' breaks, and keeps breaks around more-indented lines."""
    if style == "|":
        return "\n" * (blank + 1)
    if content.startswith((" ", "\t")) or previous.startswith((" ", "\t")):
        return "\n" * (blank + 1)
    return "\n" * blank if blank else " "


def _parent_indent(text: str) -> int:
    """The indentation of the mapping whose key holds the block scalar: its key's column (after any ``- ``)."""
    indent = len(text) - len(text.lstrip(" "))
    while text[indent:indent + 2] == "- ":
        indent += 2
        indent += len(text[indent:]) - len(text[indent:].lstrip(" "))
    return indent
