"""What the embedded stand-ins' adapters share: a list of calls applied in one transaction, as outcomes.

A stand-in (the Customer.io workspace, the User.com app) takes the requests its destination's HTTP
transport would send and answers, per request, applied or rejected. :func:`apply_calls` turns that
into the contract's outcomes: a request that cannot be built and a rejected one are ``refused``
(as the real API's 4xx would be), a stand-in that cannot write at all fails the whole batch.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..delivery.outcome import DELIVERED, FAILED, REFUSED, Outcome
from ..model import ActionCall

#: Calls an embedded stand-in takes in one ``deliver``, and so in one transaction (the contract's
#: ``gather``). Every commit writes each page the transaction changed, and calls keyed by random ids
#: change pages all over the file's indexes, so bigger transactions write far fewer pages a call:
#: 200,000 events ran into the workspace 27% faster than at ~900 calls a commit (16,384 gained no
#: more). The changed pages wait in memory until the commit: about 20 KB a call, 70 MB more at peak.
GATHER = 4096


def apply_calls(calls: Sequence[ActionCall], prepare: Callable[[ActionCall], Any],
                apply_many: Callable[[list[Any]], Sequence[Any]], *, failure: type[Exception],
                rejected: type, where: str, refused_by: str) -> list[Outcome]:
    """One outcome per call, in order.

    ``prepare(call)`` gives the request, or a string saying why there is none (``call.prepared``, built
    in a worker, is used when present); ``apply_many`` applies the requests in one transaction and
    answers one result each, an instance of ``rejected`` for a refused one; it raises ``failure`` when
    the store cannot be written. ``where`` names the store in failures, ``refused_by`` in refusals.
    """
    outcomes: list[Outcome | None] = [None] * len(calls)
    requests: list[Any] = []
    positions: list[int] = []
    for position, call in enumerate(calls):
        prepared = call.prepared if call.prepared is not None else prepare(call)
        if isinstance(prepared, str):
            outcomes[position] = Outcome(REFUSED, 1, message=prepared, call=call)
            continue
        requests.append(prepared)
        positions.append(position)
    if requests:
        try:
            results = apply_many(requests)
        except failure as error:
            for position in positions:
                outcomes[position] = Outcome(FAILED, 1, message=f"{where}: {error}", call=calls[position])
        else:
            for position, result in zip(positions, results):
                call = calls[position]
                if isinstance(result, rejected):
                    status, reason = getattr(result, "status", 400), str(getattr(result, "reason", ""))
                    outcomes[position] = Outcome(REFUSED, 1, status, reason, f"refused by {refused_by}: {reason}",
                                                 call=call)
                else:
                    outcomes[position] = Outcome(DELIVERED, 1, call=call)
    return [outcome for outcome in outcomes if outcome is not None]
