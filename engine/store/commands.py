"""What the ``switchyard workspace`` commands of every embedded stand-in share: the file check, errors as
exit codes, and printing a table or JSON.

Exit codes are the ``switchyard`` command's: 0 success, 1 problems, 2 usage. The commands
themselves (what to read, how to render it) belong to each stand-in: :mod:`engine.workspace.cli`
(Customer.io) and :mod:`engine.userengage.cli` (User.com).
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

from ..events import json_text, with_escapes

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
#: The commands that may start from a file that does not exist yet.
CREATING = ("settings", "serve")


def run_command(args: Any, handlers: Mapping[str, Callable[[Any], int]], *, destination_error: type[Exception],
                usage: tuple[type[Exception], ...] = (), problems: tuple[type[Exception], ...] = ()) -> int:
    """Run the handler of ``args.workspace_command``; an error of a kind named here is a message and an exit code.

    ``destination_error`` (no ``--destination`` for a file that holds several, or one it does not
    hold) and ``usage`` exit 2, ``problems`` exit 1. Checked in that order, so a subclass named
    first wins.
    """
    if args.workspace_command not in CREATING and not Path(args.db).is_file():
        print(f"switchyard: no workspace at {args.db} (run `switchyard run` first, or pass --db)", file=sys.stderr)
        return EXIT_USAGE
    try:
        return handlers[args.workspace_command](args)
    except destination_error as error:
        print(f"switchyard: {error} (--destination NAME)", file=sys.stderr)
        return EXIT_USAGE
    except usage as error:
        print(f"switchyard: {error}", file=sys.stderr)
        return EXIT_USAGE
    except problems as error:
        print(f"switchyard: {error}", file=sys.stderr)
        return EXIT_PROBLEMS


def show(args: Any, data: Any, render: Callable[[Any], str] | None) -> int:
    """Print ``data`` as JSON with ``--json`` (or with no ``render``), else as ``render`` writes it."""
    # json_text: an integer of any length, as the file may hold, is written whole
    text = json_text(data, indent=2) if args.json or render is None else render(data)
    print(with_escapes(text))  # a lone surrogate a refused call held: a UTF-8 stream cannot take it
    return EXIT_OK


def reading(args: Any, connect: Callable[..., Any]) -> closing:
    """A connection to ``args.db`` (``--destination``) that ``with`` closes (a bare sqlite3 connection's
    ``with`` only commits); it writes nothing to the file: it creates, adopts and migrates nothing there."""
    return closing(connect(args.db, read_only=True, destination=args.destination))
