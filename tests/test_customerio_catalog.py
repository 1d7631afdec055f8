"""The customerio catalog (schemas/actions/customerio/) and the rule pack rules/customerio.yaml."""
from __future__ import annotations

import pytest
import yaml

import engine
from conftest import ROOT
from engine import catalog as catalogs
from engine.cli import main
from engine.mapping import compile_fields, merge_defaults

CATALOG = catalogs.load("customerio")

# action: (Segment's title, required fields)
ACTIONS = {
    "createUpdatePerson": ("Create or Update Person", []),
    "trackEvent": ("Track Event", ["name"]),
    "trackPageView": ("Track Page View", ["url"]),
    "trackScreenView": ("Track Screen View", ["name"]),
    "createUpdateDevice": ("Create or Update Device", ["person_id", "device_id", "platform"]),
    "deleteDevice": ("Delete Device", ["person_id", "device_id"]),
    "createUpdateObject": ("Create or Update Object", ["id"]),
    "deleteObject": ("Delete Object", []),
    "deleteRelationship": ("Delete Relationship", ["person_id", "object_id"]),
    "deletePerson": ("Delete Person", ["person_id"]),
    "mergePeople": ("Merge People", ["primary", "secondary"]),
    "suppressPerson": ("Suppress Person", ["person_id"]),
    "unsuppressPerson": ("Unsuppress Person", ["person_id"]),
    "reportDeliveryEvent": ("Report Delivery Event", ["delivery_id", "metric"]),
    "reportContentEvent": ("Report Content Event", ["actionType"]),
}
CONVERTING = {"createUpdatePerson", "trackEvent", "trackPageView", "trackScreenView", "createUpdateDevice",
              "createUpdateObject", "reportContentEvent"}
BATCHING = {"enable_batching": True, "batch_size": 50}

SAMPLE = {
    "type": "track", "event": "Signed Up", "userId": "u1", "anonymousId": "anon-1", "messageId": "m-1",
    "previousId": "old-1", "groupId": "g-1", "name": "Home", "timestamp": "2024-05-01T12:30:00Z",
    "traits": {"email": "a@example.com", "createdAt": "2019-02-01", "objectId": "o-1", "objectTypeId": "2",
               "objectAttributes": {"plan": "pro"}, "relationshipAttributes": {"role": "admin"}},
    "properties": {"url": "https://x.example/", "objectId": "o-2", "objectTypeId": "3", "deliveryId": "d-1",
                   "metric": "opened", "recipient": "r@example.com", "reason": "none", "href": "https://h.example/",
                   "actionName": "cta", "actionValue": "v", "actionType": "viewed_content"},
    "context": {"device": {"token": "tok", "type": "ios"}, "app": {"version": "1.2"}},
}
EVENT_FIELDS = {"timestamp": "2024-05-01T12:30:00Z", "convert_timestamp": True}
PROPERTIES = SAMPLE["properties"]

# What Segment's default mappings give for SAMPLE, action by action.
DEFAULTS = {
    "createUpdatePerson": {"id": "u1", "anonymous_id": "anon-1", "email": "a@example.com", "created_at": "2019-02-01",
                           "group_id": "o-1", "custom_attributes": SAMPLE["traits"],
                           "relationship_attributes": {"role": "admin"}, **EVENT_FIELDS, "object_type_id": "2"},
    "trackEvent": {"id": "u1", "anonymous_id": "anon-1", "name": "Signed Up", "event_id": "m-1",
                   "timestamp": "2024-05-01T12:30:00Z", "data": PROPERTIES, "convert_timestamp": True},
    "trackPageView": {"id": "u1", "anonymous_id": "anon-1", "event_id": "m-1", "url": "https://x.example/",
                      "timestamp": "2024-05-01T12:30:00Z", "data": PROPERTIES, "convert_timestamp": True},
    "trackScreenView": {"id": "u1", "anonymous_id": "anon-1", "event_id": "m-1", "name": "Home",
                        "timestamp": "2024-05-01T12:30:00Z", "data": PROPERTIES, "convert_timestamp": True},
    "createUpdateDevice": {"person_id": "u1", "device_id": "tok", "app_version": "1.2", "platform": "ios",
                           "last_used": "2024-05-01T12:30:00Z", "attributes": PROPERTIES, "convert_timestamp": True},
    "deleteDevice": {"person_id": "u1", "device_id": "tok"},
    "createUpdateObject": {"id": "g-1", "created_at": "2019-02-01", "custom_attributes": {"plan": "pro"},
                           "relationship_attributes": {"role": "admin"}, "user_id": "u1", "anonymous_id": "anon-1",
                           "object_type_id": "2", "convert_timestamp": True},
    "deleteObject": {"object_id": "o-2", "object_type_id": "3"},
    "deleteRelationship": {"person_id": "u1", "anonymous_id": "anon-1", "object_id": "o-2", "object_type_id": "3"},
    "deletePerson": {"person_id": "u1"},
    "mergePeople": {"primary": "u1", "secondary": "old-1"},
    "suppressPerson": {"person_id": "u1"},
    "unsuppressPerson": {"person_id": "u1"},
    "reportDeliveryEvent": {"delivery_id": "d-1", "metric": "opened", "recipient": "r@example.com", "reason": "none",
                            "href": "https://h.example/", "action_name": "cta", "action_value": "v",
                            "timestamp": "2024-05-01T12:30:00Z"},
    "reportContentEvent": {"anonymous_id": "anon-1", "actionType": "viewed_content",
                           "timestamp": "2024-05-01T12:30:00Z", "data": PROPERTIES, "convert_timestamp": True},
}


def _payload(action, event):
    mapper, problems = compile_fields(merge_defaults({}, action.defaults()))
    assert problems == []
    return mapper.apply(event)


def test_the_catalog_has_the_fifteen_actions():
    assert sorted(CATALOG.actions) == sorted(ACTIONS)


@pytest.mark.parametrize("name", ACTIONS)
def test_action_schema_shape(name):
    action = CATALOG.actions[name]
    title, required = ACTIONS[name]
    assert action.title == title
    assert action.required == required
    assert action.open is False
    for field, spec in action.properties.items():
        assert spec.get("title") and spec.get("description") and spec.get("type"), field
    assert {k: action.properties[k]["x-default"] for k in BATCHING} == {"enable_batching": "`true`",
                                                                       "batch_size": "`50`"}
    assert (action.properties["batch_size"]["minimum"], action.properties["batch_size"]["maximum"]) == (2, 100)
    assert ("convert_timestamp" in action.properties) == (name in CONVERTING)


@pytest.mark.parametrize("name", ACTIONS)
def test_defaults_resolve_like_segments_default_mappings(name):
    action = CATALOG.actions[name]
    payload = _payload(action, SAMPLE)
    assert payload == {**DEFAULTS[name], **BATCHING}
    assert list(payload) == [key for key in action.properties if key in payload]  # the schema's field order
    assert action.validator.errors(payload) == []


@pytest.mark.parametrize("field,event,expected", [
    ("id", {"userId": "u1", "traits": {"email": "a@example.com"}}, "u1"),
    ("id", {"userId": "", "traits": {"email": "a@example.com"}}, "a@example.com"),
    ("id", {"traits": {"email": "a@example.com"}}, "a@example.com"),
    ("created_at", {"traits": {"created_at": "2020-01-01", "createdAt": "2019-01-01"}}, "2020-01-01"),
    ("created_at", {"traits": {"createdAt": "2019-01-01"}}, "2019-01-01"),
    ("object_type_id", {"traits": {"object_type_id": 1, "objectTypeId": "2"}}, 1),
    ("object_type_id", {"traits": {"objectTypeId": "2"}}, "2"),
])
def test_if_exists_defaults_fall_back(field, event, expected):
    assert _payload(CATALOG.actions["createUpdatePerson"], event).get(field) == expected


def test_a_bare_event_still_gets_the_literal_defaults():
    assert _payload(CATALOG.actions["trackEvent"], {"type": "track"}) == {"convert_timestamp": True, **BATCHING}


@pytest.mark.parametrize("action,payload,message", [
    ("trackEvent", {"name": {"a": 1}}, "Event Name must be a string but it was an object."),
    ("trackEvent", {}, "The root value is missing the required field 'name'."),
    ("trackPageView", {}, "The root value is missing the required field 'url'."),
    ("mergePeople", {}, "The root value is missing the required field 'primary'."),
    ("trackEvent", {"name": "x", "batch_size": 1}, "Batch Size must be >= 2 but it was 1."),
    ("trackEvent", {"name": "x", "batch_size": 101}, "Batch Size must be <= 100 but it was 101."),
    ("trackEvent", {"name": "x", "enable_batching": "yes"}, "Batch Data to Customer.io must be a boolean"),
    ("trackEvent", {"name": "x", "id": ["u1"]}, "Person ID must be a string or a number but it was an array."),
    ("reportDeliveryEvent", {"delivery_id": "d", "metric": "read"},
     'Metric must be one of: "delivered", "opened", "clicked", "converted", "spammed", "bounced", "dropped", '
     '"deferred".'),
    ("reportContentEvent", {"actionType": "liked"}, 'Action Type must be one of: "viewed_content", "clicked_content".'),
    ("deletePerson", {"person_id": "u1", "extra": 1}, "has an unexpected property, extra"),
])
def test_validation_messages_read_like_segments(action, payload, message):
    assert any(message in problem for problem in CATALOG.actions[action].validator.errors(payload))


def test_destination_settings():
    settings = CATALOG.settings_schema
    assert CATALOG.transports == ["http", "workspace", "file"]
    assert CATALOG.default_transport == "workspace"
    assert settings["additionalProperties"] is False
    assert {k for k, spec in settings["properties"].items() if spec.get("x-secret")} == {"site_id", "api_key"}
    assert settings["properties"]["region"]["enum"] == ["us", "eu", "US 🇺🇸", "EU 🇪🇺"]


def _lint(tmp_path, capsys, settings: str) -> tuple[int, str]:
    path = tmp_path / "cio.yaml"
    path.write_text(f"version: 1\ndestination: {{name: cio, catalog: customerio, settings: {settings}}}\n"
                    "mappings: []\n", encoding="utf-8")
    status = main(["lint", str(path)])
    return status, capsys.readouterr().out


@pytest.mark.parametrize("settings", [
    "{region: us}", "{region: eu}", "{region: 'US 🇺🇸'}", "{region: 'EU 🇪🇺'}", "{site_id: '', api_key: ''}",
    "{base_url: ''}", "{base_url: 'http://127.0.0.1:8080'}", "{path: out/x.ndjson}",
])
def test_settings_lint_clean(tmp_path, capsys, settings):
    status, out = _lint(tmp_path, capsys, settings)
    assert status == 0, out


@pytest.mark.parametrize("settings", ["{region: EU}", "{region: de}", "{base_url: 'track.customer.io'}",
                                      "{siteId: x}", "{site_id: 5}"])
def test_bad_settings_are_sy306(tmp_path, capsys, settings):
    status, out = _lint(tmp_path, capsys, settings)
    assert status == 1 and "error SY306" in out


def test_secret_settings_are_never_printed(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CIO_TEST_SITE", "not-a-region-sup3rs3cret")
    status, out = _lint(tmp_path, capsys, "{region: '${CIO_TEST_SITE}', site_id: 12345}")
    assert status == 1 and "setting 'site_id' must be of type string" in out
    assert "setting 'region' must be one of \"us\", \"eu\"" in out
    assert "sup3rs3cret" not in out and "12345" not in out.split("\n")[0]


# -- the pack ----------------------------------------------------------------------------------

# Segment's presets (reference section 7): mapping name -> (action, trigger as Segment writes it).
TRACK_EXCLUSIONS = ["Application Installed", "Application Opened", "Application Uninstalled",
                    "Device Created or Updated", "Device Deleted", "Relationship Deleted", "User Deleted",
                    "User Suppressed", "User Unsuppressed", "Object Deleted", "Report Delivery Event",
                    "Report Content Event"]
PRESETS = {
    "Create or Update Person": ("createUpdatePerson", 'type = "identify"'),
    "Create or Update Device": ("createUpdateDevice", 'event = "Application Installed" or event = "Application Opened" '
                                                      'or event = "Device Created or Updated"'),
    "Delete Device": ("deleteDevice", 'event = "Application Uninstalled" or event = "Device Deleted"'),
    "Delete Relationship": ("deleteRelationship", 'event = "Relationship Deleted"'),
    "Delete Person": ("deletePerson", 'event = "User Deleted"'),
    "Delete Object": ("deleteObject", 'event = "Object Deleted"'),
    "Track Event": ("trackEvent", 'type = "track" ' + " ".join(f'and event != "{e}"' for e in TRACK_EXCLUSIONS)),
    "Track Page View": ("trackPageView", 'type = "page"'),
    "Track Screen View": ("trackScreenView", 'type = "screen"'),
    "Create or Update Object": ("createUpdateObject", 'type = "group"'),
    "Merge People": ("mergePeople", 'type = "alias"'),
    "Suppress Person": ("suppressPerson", 'event = "User Suppressed"'),
    "Unsuppress Person": ("unsuppressPerson", 'event = "User Unsuppressed"'),
    "Report Delivery Event": ("reportDeliveryEvent", 'event = "Report Delivery Event"'),
    "Report Content Event": ("reportContentEvent", 'event = "Report Content Event"'),
}


def test_the_pack_is_segments_quick_setup():
    data = yaml.safe_load((ROOT / "rules" / "customerio.yaml").read_text(encoding="utf-8"))
    mappings = {m["name"]: m for m in data["mappings"]}
    assert set(mappings) == set(PRESETS)
    for name, (action, trigger) in PRESETS.items():
        assert mappings[name]["action"] == action
        assert " ".join(mappings[name]["trigger"].split()) == trigger, name
        assert "fields" not in mappings[name], f"{name} relies on the catalog defaults"
    assert [m["name"] for m in data["mappings"] if m.get("enabled") is False] == ["Track Screen View"]
    assert "transport" not in data["destination"]


def test_the_pack_loads_with_no_environment_and_uses_the_workspace():
    rules = engine.load(ROOT / "rules" / "customerio.yaml", environ={})
    destination = rules.destinations[0]
    assert (destination.name, destination.catalog.name, destination.transport) == ("customerio", "customerio", "workspace")
    assert rules.warnings == []
    assert dict(destination.settings) == {"site_id": "", "api_key": "", "region": "us", "base_url": ""}
    assert destination.settings.masked()["api_key"] == "********"


def test_the_pack_reads_credentials_from_the_environment():
    environ = {"CUSTOMERIO_SITE_ID": "site-1", "CUSTOMERIO_API_KEY": "key-1", "CUSTOMERIO_REGION": "EU 🇪🇺"}
    settings = engine.load(ROOT / "rules" / "customerio.yaml", environ=environ).destinations[0].settings
    assert (settings["site_id"], settings["api_key"], settings["region"]) == ("site-1", "key-1", "EU 🇪🇺")
    assert "key-1" not in repr(settings)


def test_the_pack_lints_and_its_tests_pass(capsys):
    assert main(["lint", str(ROOT / "rules" / "customerio.yaml")]) == 0
    assert capsys.readouterr().out.strip().endswith("0 error(s), 0 warning(s)")
    assert main(["test", str(ROOT / "rules" / "customerio.yaml")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith(" passed, 0 failed")


@pytest.mark.parametrize("name", ACTIONS)
def test_the_docs_list_every_field_with_its_default(name):
    docs = (ROOT / "docs" / "customerio.md").read_text(encoding="utf-8")
    section = docs.split(f"### `{name}`: {ACTIONS[name][0]}\n", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    action = CATALOG.actions[name]
    for field, spec in action.properties.items():
        if field in ("enable_batching", "batch_size", "convert_timestamp"):
            continue
        row = next((line for line in section.splitlines() if line.startswith(f"| `{field}`")), None)
        assert row is not None, f"docs/customerio.md has no row for {name}.{field}"
        assert f"| {spec['title']} |" in row and f"`{spec['x-default']}`" in row, row
        assert ("**required**" in row) == (field in action.required), row
