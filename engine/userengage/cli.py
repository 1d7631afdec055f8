"""``switchyard workspace users|user|companies|company|events|settings|serve`` for User.com stand-ins.

engine/workspace/cli.py owns the ``workspace`` parser and hands a command here when it is about
a ``userengage`` destination (:func:`is_userengage`). Exit codes are the ``switchyard``
command's: 0 success, 1 problems (no such user, a definition refused, the port taken), 2 usage.
"""
from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from .. import store
from ..store.commands import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, reading, run_command, show
from ..store.namespace import REGISTRY

#: Commands only a User.com stand-in has.
COMMANDS = ("users", "user", "companies", "company")
#: Commands both kinds of embedded state have.
SHARED = ("events", "settings", "serve")


def is_userengage(args) -> bool:
    """Whether a ``workspace`` command is about a User.com stand-in.

    Its own commands always are; ``events``, ``settings`` and ``serve`` are when ``--catalog
    userengage`` says so, when ``--destination`` names a User.com destination of the file, or
    when the file holds User.com state and no Customer.io workspace.
    """
    if args.workspace_command in COMMANDS:
        return True
    if args.workspace_command not in SHARED:
        return False
    if getattr(args, "catalog", None):
        return bool(args.catalog == "userengage")
    try:
        if args.destination is not None:
            return args.destination in store.destinations(args.db, "userengage")
        return _catalogs(args.db) == {"userengage"}
    except (store.StoreError, sqlite3.Error):
        return False


def _catalogs(path) -> set[str]:
    """The catalogs whose state the file at ``path`` holds, named destinations or not."""
    if not Path(path).is_file():
        return set()
    db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] != store.FILE_FORMAT:
            return {"customerio"}  # a file from before the registry holds one Customer.io workspace
        return {row[0] for row in db.execute(f"SELECT catalog FROM {REGISTRY}")}
    finally:
        db.close()


def run(args) -> int:
    """Run a ``switchyard workspace`` subcommand against a User.com stand-in."""
    from .store import AppError, DestinationError

    return run_command(args, _HANDLERS, destination_error=DestinationError, problems=(AppError,))


def _open(args):
    from .store import connect

    return reading(args, connect)


def _users(args) -> int:
    from . import inspect

    with _open(args) as db:
        rows = inspect.users(db, id=args.id, anonymous_id=args.anonymous_id)
        counts = inspect.totals(db)
    return show(args, rows, lambda data: inspect.render_users(data, counts))


def _user(args) -> int:
    from . import inspect

    with _open(args) as db:
        found = inspect.find_user(db, id=args.id, anonymous_id=args.anonymous_id, recent=args.events)
    if found is None:
        given = f"custom id '{args.id}'" if args.id is not None else f"anonymous id '{args.anonymous_id}'"
        print(f"switchyard: no user with {given}", file=sys.stderr)
        return EXIT_PROBLEMS
    return show(args, found, inspect.render_user)


def _companies(args) -> int:
    from . import inspect

    with _open(args) as db:
        rows = inspect.companies(db, id=args.id)
    return show(args, rows, inspect.render_companies)


def _company(args) -> int:
    from . import inspect

    with _open(args) as db:
        found = inspect.find_company(db, id=args.id)
    if found is None:
        print(f"switchyard: no company with custom id '{args.id}'", file=sys.stderr)
        return EXIT_PROBLEMS
    return show(args, found, inspect.render_company)


def _events(args) -> int:
    from . import inspect

    with _open(args) as db:
        rows = inspect.events(db, id=args.id, anonymous_id=args.anonymous_id, name=args.name, limit=args.limit)
    return show(args, rows, inspect.render_events)


def _settings(args) -> int:
    from . import inspect
    from .app import App
    from .store import parse_definitions

    given = {"attribute_types": args.attribute_type, "event_attribute_types": args.event_attribute_type,
             "company_attribute_types": args.company_attribute_type}
    declared: dict[str, dict[str, str]] = {}
    for setting, declarations in given.items():
        for declaration in declarations:
            name, equals, kind = declaration.partition("=")
            if not equals or not name:
                print(f"switchyard: an attribute type is NAME=TYPE, not '{declaration}'", file=sys.stderr)
                return EXIT_USAGE
            declared.setdefault(setting, {})[name] = kind
    definitions = parse_definitions(declared)
    with App.open(args.db, destination=args.destination, create=not Path(args.db).is_file()) as app:
        found = app.define(definitions) if definitions else app.definitions()
    return show(args, found, inspect.render_definitions)


def _serve(args) -> int:
    from .server import make_server

    if not args.api_key:
        print("switchyard: serving a User.com stand-in needs --api-key", file=sys.stderr)
        return EXIT_USAGE

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        server = make_server(args.db, args.api_key, destination=args.destination, host=args.host, port=args.port,
                             create=not Path(args.db).is_file(), log=log)
    except OSError as error:
        print(f"switchyard: cannot listen on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
        return EXIT_PROBLEMS
    with server:
        host, port = server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        print(f"serving the User.com stand-in {args.db} at http://{host}:{port}/api/public/ (Ctrl-C stops)",
              file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return EXIT_OK


_HANDLERS = {"users": _users, "user": _user, "companies": _companies, "company": _company, "events": _events,
             "settings": _settings, "serve": _serve}
