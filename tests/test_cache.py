"""The start-up cache (engine/cache.py): used only when private, never stale, and never a reason to fail."""
from __future__ import annotations

import marshal
import os

from conftest import switchyard
from engine import cache

# A rule file with a trigger Lark refuses, one it reads, and a structure the rules check refuses:
# its report comes from both cached builds.
BAD_RULES = """\
destination:
  name: cio
  catalog: customerio
mappings:
  - name: Identify
    trigger: type = "identify" and
    action: createUpdatePerson
  - name: Track
    trigger: type = "track" and properties.total > 10
    action: trackEvent
    colour: blue
"""


def test_an_entry_is_read_back_under_its_own_key_only(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENVIRONMENT, str(tmp_path / "cache"))
    first, second = cache.key("grammar", "1.0"), cache.key("grammar", "1.1")
    assert first != second and cache.key("gram", "mar1.0") != first  # the parts are kept apart
    cache.write("parser", first, b"tables")
    assert cache.read("parser", first) == b"tables"
    assert cache.read("parser", second) is None
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700


def test_a_directory_others_can_write_to_is_never_read(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setenv(cache.ENVIRONMENT, str(shared))
    entry = cache.key("x")
    (shared / f"parser-{entry}").write_bytes(b"planted")
    shared.chmod(0o777)
    assert cache.read("parser", entry) is None
    cache.write("parser", cache.key("y"), b"data")
    assert sorted(path.name for path in shared.iterdir()) == [f"parser-{entry}"]


def test_an_entry_that_is_a_link_or_that_others_can_write_is_never_read(tmp_path, monkeypatch):
    """The entry is checked once open, so swapping a directory above the cache cannot plant one."""
    monkeypatch.setenv(cache.ENVIRONMENT, str(tmp_path / "cache"))
    linked, writable = cache.key("linked"), cache.key("writable")
    cache.write("parser", cache.key("real"), b"data")
    (tmp_path / "elsewhere").write_bytes(b"planted")
    (tmp_path / "cache" / f"parser-{linked}").symlink_to(tmp_path / "elsewhere")
    cache.write("parser", writable, b"planted")
    (tmp_path / "cache" / f"parser-{writable}").chmod(0o666)
    assert cache.read("parser", cache.key("real")) == b"data"
    assert cache.read("parser", linked) is None
    assert cache.read("parser", writable) is None


def test_an_empty_setting_turns_the_cache_off(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENVIRONMENT, "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache.write("parser", cache.key("x"), b"data")
    assert cache.read("parser", cache.key("x")) is None
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_place_is_not_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(cache.ENVIRONMENT, str(blocker / "cache"))
    cache.write("parser", cache.key("x"), b"data")
    assert cache.read("parser", cache.key("x")) is None


def test_lint_reports_the_same_from_a_cold_a_warm_and_a_damaged_cache(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(BAD_RULES, encoding="utf-8")
    place = tmp_path / "cache"
    env = {**os.environ, cache.ENVIRONMENT: str(place)}

    cold = switchyard("lint", rules, env=env)
    entries = sorted(place.iterdir())
    assert [path.name.rsplit("-", 1)[0] for path in entries] == ["rules-check", "trigger-parser"]
    warm = switchyard("lint", rules, env=env)
    for path in entries:
        path.write_bytes(b"\x00damaged")
    damaged = switchyard("lint", rules, env=env)
    check = next(path for path in entries if path.name.startswith("rules-check"))
    name, code = marshal.loads(check.read_bytes())
    check.write_bytes(marshal.dumps(("W" + name[1:], code)))  # still loads, names nothing: built again too
    renamed = switchyard("lint", rules, env=env)
    uncached = switchyard("lint", rules, env={**os.environ, cache.ENVIRONMENT: ""})

    assert cold.returncode == 1 and "SY101" in cold.stdout and "colour" in cold.stdout, cold.stdout + cold.stderr
    assert (warm.stdout, warm.stderr) == (damaged.stdout, damaged.stderr) == (cold.stdout, cold.stderr) \
        == (renamed.stdout, renamed.stderr) == (uncached.stdout, uncached.stderr)
    assert all(path.read_bytes() != b"\x00damaged" for path in entries)  # built again and stored


def test_a_warm_run_of_valid_rules_imports_neither_jsonschema_nor_the_plugin_finder(tmp_path):
    """Together a third of the start-up (0.27 s against 0.18 s on an empty input): jsonschema only words what
    is wrong with a secret setting, and plugins are looked for only for a catalog that is not bundled."""
    import subprocess
    import sys

    from conftest import ROOT

    events = tmp_path / "events.ndjson"
    events.write_text("", encoding="utf-8")
    script = ("import sys\nfrom engine.cli import main\n"
              f"code = main(['run', {str(ROOT / 'rules' / 'customerio.yaml')!r}, {str(events)!r}, '--dry-run'])\n"
              "print(sorted(m for m in ('jsonschema', 'importlib.metadata') if m in sys.modules), code)")
    env = {**os.environ, cache.ENVIRONMENT: str(tmp_path / "cache")}
    outputs = [subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
               for _ in range(2)]
    assert outputs[1].stdout.splitlines()[-1] == "[] 0", outputs[1].stdout + outputs[1].stderr
