"""Applying Track API calls to a workspace: the :class:`Workspace`, and which handler applies which call.

Entry points, each one write transaction: :meth:`Workspace.apply_many` (any number of entity and
metrics calls, as an adapter delivers them), :meth:`Workspace.apply` (``POST /api/v2/entity``),
:meth:`Workspace.apply_batch` (``/api/v2/batch``) and :meth:`Workspace.apply_metrics`
(``/api/v1/metrics``). A call either applies whole or is refused whole: it is stored in
``rejected`` with a stable code and reason and comes back as :class:`Rejected`, and its
neighbours in the transaction apply regardless. Nothing here raises on bad input; storage
failures raise WorkspaceError.

The handlers live by what they change: :mod:`~engine.workspace.people`,
:mod:`~engine.workspace.events`, :mod:`~engine.workspace.objects`,
:mod:`~engine.workspace.metrics`; :data:`ENTITY_ACTIONS` says which applies which call.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

from ..store import Connection
from . import events, metrics, objects, people
from .call import (
    DIRTY,
    REJECTION_CODES,
    Applied,
    Call,
    Handler,
    Outcome,
    Rejected,
    record,
)
from .metrics import METRICS
from .store import (
    DestinationError,
    Settings,
    WorkspaceError,
    connect,
    parse_settings,
    read_settings,
    transaction,
    write_settings,
)
from .values import Refusal

__all__ = [
    "ENTITY_ACTIONS",
    "METRICS",
    "REJECTION_CODES",
    "Applied",
    "DestinationError",
    "Rejected",
    "Workspace",
    "WorkspaceError",
]

#: Every ``(type, action)`` the workspace applies, and what applies it.
ENTITY_ACTIONS: dict[tuple[str, str], Handler] = {
    ("person", "identify"): people.identify,
    ("person", "event"): events.event("event"),
    ("person", "page"): events.event("page"),
    ("person", "screen"): events.event("screen"),
    ("person", "viewed_content"): events.event("viewed_content"),
    ("person", "clicked_content"): events.event("clicked_content"),
    ("person", "add_device"): people.add_device,
    ("person", "delete_device"): people.delete_device,
    ("person", "delete"): people.delete_person,
    ("person", "suppress"): people.suppress,
    ("person", "unsuppress"): people.unsuppress,
    ("person", "merge"): people.merge,
    ("person", "add_relationships"): objects.add_person_relationships,
    ("person", "delete_relationships"): objects.delete_person_relationships,
    ("object", "identify"): objects.identify_object,
    ("object", "identify_anonymous"): objects.identify_object,
    ("object", "add_relationships"): objects.add_object_relationships,
    ("object", "delete_relationships"): objects.delete_object_relationships,
    ("object", "delete"): objects.delete_object,
    **{("delivery", metric): metrics.delivery for metric in METRICS},
}


def entity(call: Call, body: Any) -> str:
    """Apply one entity body with the handler its type and action name."""
    if type(body) is dict:  # the usual case, without the checks that word the refusals below
        kind, action = body.get("type"), body.get("action")
        handler = ENTITY_ACTIONS.get((kind, action)) if type(kind) is str and type(action) is str else None
        if handler is not None:
            return handler(call, body)
    if not isinstance(body, dict):
        raise Refusal("invalid_body", "an entity body is a JSON object")
    for key in ("type", "action"):
        if body.get(key) in (None, ""):
            raise Refusal("missing_field", f"the body has no {key}", key)
        if not isinstance(body[key], str):
            raise Refusal("invalid_body", f"{key} must be text", key)
    handler = ENTITY_ACTIONS.get((body["type"], body["action"]))
    if handler is None:
        actions = sorted(action for kind, action in ENTITY_ACTIONS if kind == body["type"])
        known = (f"the actions for {body['type']} are {', '.join(actions)}" if actions
                 else "the types are person, object and delivery")
        raise Refusal("unknown_action", f"no action '{body['action']}' for type '{body['type']}'; {known}", "action")
    return handler(call, body)


def _refusing(outcome: Rejected) -> Handler:
    """A handler that refuses its call as ``outcome`` says: for a call refused before it is applied."""
    def refuse(call: Call, body: Any) -> str:
        raise Refusal(outcome.code, outcome.reason, outcome.field)
    return refuse


#: The handler for each endpoint of :meth:`Workspace.apply_many`.
ENDPOINTS: dict[str, Handler] = {"entity": entity, "metrics": metrics.metrics}

# (source as stored in `rejected`, index in a batch, handler, body)
_Item = tuple[str, "int | None", Handler, Any]


class Workspace:
    """An open workspace: one destination's state in a workspace file.

    Like its sqlite3 connection, it is used by one thread at a time.
    """

    def __init__(self, db: Connection, *, clock: Callable[[], float] = time.time):
        self.db = db
        self._clock = clock
        self._settings: Settings | None = None
        self._settings_version = -1  # PRAGMA data_version when the settings were read

    @classmethod
    def open(cls, path: Any, settings: Mapping[str, Any] | None = None, *, destination: str | None = None,
             create: bool = True, clock: Callable[[], float] = time.time) -> Workspace:
        """Open (and create or migrate) ``destination``'s workspace in the file at ``path``, storing any ``settings``.

        ``destination`` None means the file's only workspace (a new file gets one that the
        first named destination adopts); a file holding several is a WorkspaceError naming
        them. ``settings`` is a mapping such as a destination's settings; only the names
        :data:`~engine.workspace.store.SETTING_NAMES` present change. Raises WorkspaceError
        (SettingsError for a bad value).
        """
        workspace = cls(connect(path, create=create, destination=destination), clock=clock)
        if settings:
            try:
                workspace.configure(settings)
            except BaseException:
                workspace.close()
                raise
        return workspace

    def configure(self, values: Mapping[str, Any]) -> Settings:
        """Store the settings named in ``values``; returns them all."""
        changes = parse_settings(values)
        with transaction(self.db):
            write_settings(self.db, changes)
        self._settings = None
        return self.settings()

    def settings(self) -> Settings:
        return read_settings(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def apply_many(self, requests: Sequence[tuple[str, Any]]) -> list[Outcome]:
        """Apply ``(endpoint, body)`` pairs in one transaction, endpoint ``"entity"`` or ``"metrics"``.

        One outcome per pair, in order; a refused call is recorded and leaves the others
        applied. When this returns, every Applied is committed. Raises ValueError for an
        unknown endpoint (before anything is applied).
        """
        try:
            items = [(endpoint, None, ENDPOINTS[endpoint], body) for endpoint, body in requests]
        except KeyError as error:
            raise ValueError(f"no workspace endpoint {error}; the endpoints are {', '.join(ENDPOINTS)}") from None
        return self._apply(items)

    def apply(self, body: Any) -> Outcome:
        """Apply one entity body (``{"type": ..., "action": ..., "identifiers": ...}``)."""
        return self._apply([("entity", None, entity, body)])[0]

    def apply_batch(self, body: Any, refused: Mapping[int, Rejected] | None = None) -> list[Outcome] | Rejected:
        """Apply ``{"batch": [entity, ...]}``: one outcome per item, or Rejected when the body is not a batch.

        ``refused`` holds, by index, items the caller refuses before they are applied (the server: an
        item over the Track API's size limit): each is stored as refused, with its body, and its
        neighbours are applied.
        """
        items = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(items, list):
            return self._refuse_whole(body, "batch",
                                      Rejected("invalid_body", 'a batch body is {"batch": [entity, ...]}'))
        refused = refused or {}
        return self._apply([("batch", index, _refusing(refused[index]) if index in refused else entity, item)
                            for index, item in enumerate(items)])

    def apply_metrics(self, body: Any) -> Outcome:
        """Apply a ``/api/v1/metrics`` body: a delivery metric stored against its delivery id."""
        return self._apply([("metrics", None, metrics.metrics, body)])[0]

    def record_unreadable(self, source: str, text: str, reason: str) -> Rejected:
        """Store a request whose body could not be read as JSON; returns how it was refused."""
        return self._refuse_whole({"unreadable_body": text[:10_000]}, source, Rejected("unreadable", reason))

    def refuse(self, source: str, body: Any, outcome: Rejected) -> Rejected:
        """Store a call the caller refuses before it is applied (``source`` ``"entity"`` or ``"metrics"``),
        with its body; returns ``outcome``."""
        return self._refuse_whole(body, source, outcome)

    def _refuse_whole(self, body: Any, source: str, outcome: Rejected) -> Rejected:
        with transaction(self.db):
            record(self.db, self._clock(), source, None, outcome, body)
        return outcome

    def _apply(self, items: Sequence[_Item]) -> list[Outcome]:
        """Apply ``items`` in one transaction, each whole or not at all.

        Most refusals are found before a call writes anything, so the calls first run without
        a savepoint each; if one is refused after writing, everything is rolled back to the
        start and applied again with a savepoint per call (:mod:`engine.workspace.call`).
        """
        if not items:
            return []
        with transaction(self.db):
            call = self._call()
            if len(items) == 1:
                source, index, handler, body = items[0]
                return [call.run(body, source, index, handler)]
            self.db.execute("SAVEPOINT unguarded")
            outcomes = []
            for source, index, handler, body in items:
                outcome = call.run_unguarded(body, source, index, handler)
                if outcome is DIRTY:
                    break
                outcomes.append(outcome)
            else:
                self.db.execute("RELEASE unguarded")
                return outcomes
            self.db.execute("ROLLBACK TO unguarded")
            self.db.execute("RELEASE unguarded")
            call = self._call()
            return [call.run(body, source, index, handler) for source, index, handler, body in items]

    def _call(self) -> Call:
        """The context of this transaction's calls; the settings are read again only when another process wrote."""
        version, suppressions = self.db.execute(
            "SELECT (SELECT data_version FROM pragma_data_version), "
            "EXISTS (SELECT 1 FROM suppressed_identifiers)").fetchone()
        if self._settings is None or version != self._settings_version:
            self._settings, self._settings_version = read_settings(self.db), version
        return Call(self.db, self._settings, self._clock(), suppressions=bool(suppressions), entity=entity)
