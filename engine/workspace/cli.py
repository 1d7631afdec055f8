"""``switchyard workspace ...``: look inside a workspace, change its settings, serve it over HTTP.

engine/cli.py wires it in: :func:`add_workspace_commands` adds the ``workspace`` parser and
:func:`run_workspace` handles it. Exit codes are the ``switchyard`` command's: 0 success,
1 problems (no such person, the port taken), 2 usage (a bad setting, no workspace file, no
``--destination`` for a file that holds several, or one the file does not hold).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..store.commands import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, reading, run_command, show

DEFAULT_DB = "switchyard.db"  # the same default as a destination's settings.workspace


def add_workspace_commands(subparsers) -> None:
    """Add ``workspace`` and its subcommands to the ``switchyard`` subparsers."""
    workspace = subparsers.add_parser("workspace", help="look inside or serve the embedded workspace")
    commands = workspace.add_subparsers(dest="workspace_command", required=True, metavar="COMMAND")

    def add(name: str, help: str, *, json_output: bool = True) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help)
        parser.add_argument("--db", default=DEFAULT_DB, metavar="PATH",
                            help="the workspace file (default: %(default)s)")
        parser.add_argument("--destination", metavar="NAME",
                            help="whose workspace, when the file holds several destinations' (see `switchyard run`)")
        if json_output:
            parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        return parser

    def person_filters(parser: argparse.ArgumentParser, required: bool = False) -> None:
        group = parser.add_mutually_exclusive_group(required=required) if required else parser
        group.add_argument("--id", help="the person's id")
        group.add_argument("--email", help="the person's email (any case of A-Z)")
        group.add_argument("--cio-id", dest="cio_id", metavar="CIO_ID", help="the person's cio_id")

    person_filters(add("people", "list people with their counts"))
    person = add("person", "everything about one person")
    person_filters(person, required=True)
    person.add_argument("--events", type=int, default=10, metavar="N", help="recent events to show (default: 10)")
    objects = add("objects", "list objects (and group calls waiting for an identify)")
    objects.add_argument("--type", help="object_type_id")
    objects.add_argument("--id", help="object_id")
    obj = add("object", "one object with its people and relationship attributes")
    obj.add_argument("--type", default="1", help="object_type_id (default: 1)")
    obj.add_argument("--id", required=True, help="object_id")
    events = add("events", "events, newest first")
    person_filters(events)
    events.add_argument("--anonymous-id", dest="anonymous_id", help="events sent with this anonymous id")
    events.add_argument("--type", help="event, page, screen, viewed_content or clicked_content")
    events.add_argument("--name", help="User.com: only events of this name")
    events.add_argument("--limit", type=int, default=50, metavar="N")
    rejected = add("rejected", "refused calls with their reasons, newest first")
    rejected.add_argument("--code", help="only this rejection code")
    rejected.add_argument("--limit", type=int, default=50, metavar="N")
    metrics = add("metrics", "delivery metrics, newest first")
    metrics.add_argument("--delivery-id", dest="delivery_id", help="one delivery")
    metrics.add_argument("--limit", type=int, default=50, metavar="N")
    settings = add("settings", "show the workspace's settings, or change them")
    for flag in ("id-only", "anonymous-merge", "typed-attributes"):
        settings.add_argument(f"--{flag}", choices=("on", "off"))
    settings.add_argument("--attribute-type", action="append", default=[], metavar="NAME=TYPE",
                          help="declare a typed attribute: string, number, boolean or timestamp (repeatable); "
                               "for User.com a user attribute: string, number, boolean or date")
    for scope in ("event", "company"):
        settings.add_argument(f"--{scope}-attribute-type", action="append", default=[], metavar="NAME=TYPE",
                              help=f"User.com: define a {scope} attribute (repeatable)")
    settings.add_argument("--catalog", choices=("customerio", "userengage"),
                          help="the kind of state, for a file or destination that has none yet (default: customerio)")
    serve = add("serve", "serve the workspace over HTTP as a Track API", json_output=False)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8600, help="(default: %(default)s)")
    serve.add_argument("--site-id", dest="site_id", help="the basic-auth user clients must send (Customer.io)")
    serve.add_argument("--api-key", dest="api_key", required=True,
                       help="the basic-auth password clients must send (User.com: the API key)")
    serve.add_argument("--catalog", choices=("customerio", "userengage"),
                       help="serve as this API, for a file or destination that has no state yet (default: customerio)")
    serve.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                       help="close a connection idle or stalled this long (default: %(default)s)")
    serve.add_argument("--max-connections", dest="max_connections", type=int, default=64, metavar="N",
                       help="connections served at once; one more is answered 503 (default: %(default)s)")
    _add_userengage_commands(add)


def _add_userengage_commands(add) -> None:
    """``users``, ``user``, ``companies`` and ``company``: a User.com stand-in's own commands."""
    def user_filters(parser: argparse.ArgumentParser, required: bool = False) -> None:
        group = parser.add_mutually_exclusive_group(required=required) if required else parser
        group.add_argument("--id", help="the user's custom id (the userId, or the anonymousId it was selected by)")
        group.add_argument("--anonymous-id", dest="anonymous_id", help="the user's anonymous id")

    user_filters(add("users", "User.com: list users with their counts"))
    user = add("user", "User.com: everything about one user")
    user_filters(user, required=True)
    user.add_argument("--events", type=int, default=10, metavar="N", help="recent events to show (default: 10)")
    companies = add("companies", "User.com: list companies with their member counts")
    companies.add_argument("--id", help="the company's custom id (the groupId)")
    company = add("company", "User.com: one company with its members")
    company.add_argument("--id", required=True, help="the company's custom id (the groupId)")


def run_workspace(args) -> int:
    """Run a ``switchyard workspace`` subcommand."""
    from ..userengage import cli as userengage
    from .store import DestinationError, SettingsError, WorkspaceError

    if userengage.is_userengage(args):
        return userengage.run(args)
    return run_command(args, _HANDLERS, destination_error=DestinationError, usage=(SettingsError,),
                       problems=(WorkspaceError,))


def _open(args):
    from .store import connect

    return reading(args, connect)


def _may_create(args) -> bool:
    """Whether ``settings`` or ``serve`` may create a workspace: only in a new file; in one that exists,
    the destination named (or the file's only one) must be there."""
    return not Path(args.db).is_file()


def _people(args) -> int:
    from . import inspect

    with _open(args) as db:
        rows = inspect.people(db, id=args.id, email=args.email, cio_id=args.cio_id)
        counts = inspect.totals(db)
    return show(args, rows, lambda data: inspect.render_people(data, counts))


def _person(args) -> int:
    from . import inspect

    given = (("id", args.id), ("email", args.email), ("cio_id", args.cio_id))
    kind, value = next((kind, value) for kind, value in given if value is not None)
    with _open(args) as db:
        person = inspect.find_person(db, **{kind: value}, recent=args.events)
        suppression = None if person is not None else inspect.find_suppression(db, kind, value)
    if person is not None:
        return show(args, person, inspect.render_person)
    if suppression is not None:
        return show(args, {"suppressed": suppression},
                     lambda data: inspect.render_suppression(kind, value, data["suppressed"]))
    print(f"switchyard: no person with {kind} '{value}'", file=sys.stderr)
    return EXIT_PROBLEMS


def _objects(args) -> int:
    from . import inspect

    with _open(args) as db:
        rows = inspect.objects(db, type=args.type, id=args.id)
        waiting = inspect.waiting(db)
    if args.json:
        return show(args, {"objects": rows, "waiting": waiting}, None)
    return show(args, rows, lambda data: inspect.render_objects(data, waiting))


def _object(args) -> int:
    from . import inspect

    with _open(args) as db:
        found = inspect.find_object(db, type=args.type, id=args.id)
    if found is None:
        print(f"switchyard: no object {args.type}/{args.id}", file=sys.stderr)
        return EXIT_PROBLEMS
    return show(args, found, inspect.render_object)


def _events(args) -> int:
    from . import inspect

    with _open(args) as db:
        rows = inspect.events(db, id=args.id, email=args.email, cio_id=args.cio_id, anonymous_id=args.anonymous_id,
                              type=args.type, limit=args.limit)
    return show(args, rows, inspect.render_events)


def _rejected(args) -> int:
    from . import inspect

    with _open(args) as db:
        rows = inspect.rejected(db, code=args.code, limit=args.limit)
    return show(args, rows, inspect.render_rejected)


def _metrics(args) -> int:
    from . import inspect

    with _open(args) as db:
        rows = inspect.metrics(db, delivery_id=args.delivery_id, limit=args.limit)
    return show(args, rows, inspect.render_metrics)


def _settings(args) -> int:
    from . import inspect
    from .apply import Workspace

    changes = {name: getattr(args, name) for name in ("id_only", "anonymous_merge", "typed_attributes")
               if getattr(args, name) is not None}
    types = {}
    for declaration in args.attribute_type:
        name, equals, kind = declaration.partition("=")
        if not equals or not name:
            print(f"switchyard: --attribute-type wants NAME=TYPE, not '{declaration}'", file=sys.stderr)
            return EXIT_USAGE
        types[name] = kind
    if types:
        changes["attribute_types"] = types
    with Workspace.open(args.db, destination=args.destination, create=_may_create(args)) as workspace:
        settings = workspace.configure(changes) if changes else workspace.settings()
    return show(args, settings.to_dict(), inspect.render_settings)


def _serve(args) -> int:
    from .server import serve

    if not args.site_id or not args.api_key:
        print("switchyard: --site-id and --api-key must not be empty: anyone could write to the workspace",
              file=sys.stderr)
        return EXIT_USAGE

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def ready(url: str) -> None:
        print(f"serving workspace {args.db} at {url} (Ctrl-C stops)", file=sys.stderr, flush=True)

    try:
        serve(args.db, args.host, args.port, args.site_id, args.api_key, destination=args.destination,
              create=_may_create(args), log=log, on_ready=ready, timeout=args.timeout,
              max_connections=args.max_connections)
    except ValueError as error:
        print(f"switchyard: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"switchyard: cannot listen on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
        return EXIT_PROBLEMS
    except KeyboardInterrupt:
        pass
    return EXIT_OK


_HANDLERS = {"people": _people, "person": _person, "objects": _objects, "object": _object, "events": _events,
             "rejected": _rejected, "metrics": _metrics, "settings": _settings, "serve": _serve}
