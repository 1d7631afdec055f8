"""A live ``switchyard serve`` fed random hostile batches: it answers each, and every destination goes on.

One server for the whole module (the bundled Customer.io pack into the workspace, and a webhook to a
real receiver), so each example costs a request, not a start. After every batch the spool must drain
(each event delivered or dead-lettered by every destination) and the server must stay ready: a
delivery that stopped on what it read back from the spool would leave the depth above zero.
"""
from __future__ import annotations

import pytest
from hooks import Hook
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_events import events

from serving import Served, hook_rules, stop_all, wait


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-fuzz")
    hook = Hook()
    served = Served(hook_rules(folder, hook.url, timeout=5), folder).start()
    yield served
    assert served.stop() == 0, served.log.read_text()
    hook.close()
    stop_all()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(events(), min_size=1, max_size=4))
def test_hostile_batches_are_answered_and_every_destination_drains_the_spool(server, items):
    status, _, answer = server.post("/v1/batch", b'{"batch":[' + b",".join(items) + b"]}")
    assert status in (200, 400), (status, answer)
    if status == 400:
        assert answer["code"] and answer["message"]
    wait(lambda: server.metric("switchyard_spool_depth") == 0)
    assert server.get("/ready")[0] == 200, server.get("/ready")[1]
