"""Turn rule files into a :class:`RuleSet`, collecting every problem on the way.

Lint and load share this one path: ``lint`` reports what ``compile_paths`` found, and
``load`` raises :class:`RuleError` when any of it is an error. No check stops the others,
so a user sees every mistake in one run.
"""
from __future__ import annotations

import difflib
import gc
import json
import marshal
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

from . import cache
from . import catalog as catalogs
from .diagnostics import ERROR, WARNING, AtKey, Problem
from .env import MASK, Settings, UnsetVariable, expand, mask_url_credentials, referenced, secret_values
from .integers import any_size
from .mapping import compile_fields, merge_defaults
from .paths import parse_path
from .resources import resource
from .ruleset import Destination, Filter, Mapping, RuleSet
from .source import Source, parse
from .trigger import Trigger, TriggerError, compile_trigger
from .validation import PayloadValidator

RULE_SUFFIXES = (".yaml", ".yml")


class RuleError(Exception):
    """Rule files have errors; ``problems`` lists every one, located."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        errors = [p for p in problems if p.severity == ERROR]
        lines = [f"{p.file}:{p.line}:{p.column}: {p.severity} {p.code} {p.message}" for p in errors]
        super().__init__(f"{len(errors)} error(s) in rule files:\n" + "\n".join(lines))


@dataclass
class TestCase:
    name: str
    event: dict
    expect: list | None
    errors: list | None
    discarded: str | None
    line: int


def discover(paths, texts=()) -> tuple[list[Path], list[Problem]]:
    """Rule files named by ``paths``: files as given, directories' YAML files in name order.

    A name in ``texts`` is a rule file given as text (stdin), not read from disk. A file named
    twice (``rules/ rules/webhook.yaml``) is read once: it would declare its destination twice.
    """
    files: list[Path] = []
    problems = []
    for given in paths:
        path = Path(given)
        if str(given) in texts:
            files.append(path)
        elif path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in RULE_SUFFIXES and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem("SY003", f"no such file or directory: {given}", file=str(given)))
    once: dict[Path, Path] = {}
    for file in files:
        once.setdefault(file if str(file) in texts else file.resolve(), file)
    return list(once.values()), problems


def compile_paths(paths, environ=None, *, texts=None) -> tuple[RuleSet, list[Problem]]:
    """Compile every rule file under ``paths`` into one rule set, with all problems found.

    ``texts`` maps a name in ``paths`` to the text of that rule file (what the CLI read from stdin).
    """
    with _young_collections_only():
        destinations, problems = _compile_paths(paths, environ, keep=True, texts=texts or {})
        return RuleSet(destinations), problems


def lint_paths(paths, environ=None) -> list[Problem]:
    """Every problem :func:`compile_paths` finds under ``paths``, without keeping what it compiles.

    Each trigger and mapping is compiled, checked and let go, so memory holds the files' values
    and not a rule set: a third of :func:`compile_paths`'s for 50,000 mappings.
    """
    with _young_collections_only():
        _, problems = _compile_paths(paths, environ, keep=False, texts={})
        return problems


_collector_lock = threading.Lock()
_collector_users = 0
_collector_thresholds: tuple[int, ...] = ()


@contextmanager
def _young_collections_only():
    """Hold off Python's full garbage collections while rule files compile.

    Compiling builds a rule set of many objects (about a hundred a mapping) and little garbage.
    Each full collection walks everything built so far and finds nothing: for 10,000 mappings
    they were nearly half the time of a lint. Young collections go on, so the few cycles a
    compile leaves behind are still freed; the usual thresholds come back after the last compile.
    """
    global _collector_users, _collector_thresholds
    with _collector_lock:
        if _collector_users == 0:
            _collector_thresholds = gc.get_threshold()
            young, middle, _ = _collector_thresholds
            gc.set_threshold(young, middle, 1 << 30)
        _collector_users += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_users -= 1
            if _collector_users == 0:
                gc.set_threshold(*_collector_thresholds)


def _compile_paths(paths, environ, *, keep: bool, texts: dict) -> tuple[list[Destination], list[Problem]]:
    files, problems = discover(paths, texts)
    destinations = []
    seen: dict[str, str] = {}
    for path in files:
        name, destination, found, source = _compile_file(path, environ, keep=keep, text=texts.get(str(path)))
        problems.extend(found)
        if name is None:
            continue
        if name in seen:
            problems.append(source.problem(("destination", "name"), Problem(
                "SY402", f"destination '{name}' is already declared in {seen[name]}")))
            continue
        seen[name] = str(path)
        if destination is not None:
            destinations.append(destination)
    return destinations, problems


def load(path, environ=None) -> RuleSet:
    """Load a rule file or a directory of them; raise :class:`RuleError` listing every error."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    rules, problems = compile_paths(paths, environ)
    if any(p.severity == ERROR for p in problems):
        raise RuleError(problems)
    rules.warnings = problems  # type: ignore[attr-defined]  # what load found short of errors, for its callers
    return rules


def compile_file(path: Path, environ=None) -> tuple[Destination | None, list[Problem], Source]:
    _, destination, problems, source = _compile_file(path, environ, keep=True)
    return destination, problems, source


def _compile_file(path: Path, environ, *, keep: bool,
                  text: str | bytes | None = None) -> tuple[str | None, Destination | None, list[Problem], Source]:
    """The destination's name (None when it has none) and, if ``keep``, the destination compiled.

    ``text``: the file's content given (stdin), as text or as bytes read like a file's."""
    try:
        data = path.read_bytes() if text is None else text
        if isinstance(data, bytes):  # line breaks as read_text gives them: \r\n and \r are \n
            text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        else:
            text = data
    except UnicodeDecodeError as error:
        return None, None, [_not_utf8(str(path), error)], Source(str(path), "")
    except OSError as error:
        source = Source(str(path), "")
        return None, None, [Problem("SY003", f"cannot read rule file: {error}", file=str(path))], source
    source = parse(str(path), text)
    if source.problems and source.data is None:
        return None, None, [_unquoted_secret(problem) for problem in source.problems], source
    compiler = _FileCompiler(source, environ, keep=keep)
    name, destination = compiler.run()
    return name, destination, compiler.problems, source


def _not_utf8(file: str, error: UnicodeDecodeError) -> Problem:
    """SY003 at the first byte that is not UTF-8, its line and column counted in characters."""
    before = error.object[:error.start].decode("utf-8").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    line, column = len(before), len(before[-1]) + 1
    return Problem("SY003", f"cannot read rule file: it is not UTF-8 (byte 0x{error.object[error.start]:02X} at "
                            f"line {line}, column {column}); save it as UTF-8", file=file, line=line, column=column)


@lru_cache(maxsize=1)
def _rules_schema() -> dict:
    return json.loads((resource("schemas") / "rules.schema.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _rules_validator():
    """jsonschema's validator for rule files: it explains what is wrong. Imported only when needed."""
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    return Draft202012Validator(_rules_schema())


@lru_cache(maxsize=1)
def _rules_check():
    """A compiled yes/no check of a rule file's structure, 20x faster than jsonschema on large files.

    The rule-file schema uses only keywords that mean the same in draft 7 (what fastjsonschema
    implements) and 2020-12 ($ref has no siblings); tests/test_lint.py compares the verdicts.
    """
    import fastjsonschema

    plain = {key: value for key, value in _rules_schema().items() if key != "$schema"}
    entry = cache.key(json.dumps(plain, sort_keys=True), fastjsonschema.VERSION)
    try:  # the cache holds the code (see engine.cache): generating and compiling it takes 40 ms
        name, code = marshal.loads(cache.read("rules-check", entry) or b"")
        validate = _function(code, name)
    except Exception:  # noqa: BLE001 - no entry, or a damaged one: build it again
        source = fastjsonschema.compile_to_code(plain)
        name = re.search(r"^def (\w+)", source, re.MULTILINE).group(1)  # the schema's own comes first
        code = compile(source, "<rules-check>", "exec")
        cache.write("rules-check", entry, marshal.dumps((name, code)))
        validate = _function(code, name)

    def valid(data) -> bool:
        try:
            validate(data)
        except Exception:  # noqa: BLE001 - any doubt goes to jsonschema, which says what is wrong
            return False
        return True
    return valid


def _function(code, name: str):
    """The function ``name`` that ``code`` (fastjsonschema's, for our own shipped schema) defines."""
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - see above
    return namespace[name]


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), [choice for choice in choices if isinstance(choice, str)],
                                      n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


#: A key whose value a file that YAML cannot read may show in a quoted line: a catalog's secret settings
#: (``api_key``, ``site_id``), and what names a secret inside headers or an OAuth block.
#: The key must end with the word, or with it and ``key`` or ``value`` (``client_secret``, ``X-Secret-Key``,
#: ``accessToken``, ``api_key_value``), so ``token_count`` is no secret.
_SECRET_VALUE = re.compile(r"""((?:^|[\s{,'"])(?:[\w-]*(?:secret|password|passwd|passphrase|token|authorization"""
                           r"""|api[_-]?key|private[_-]?key|access[_-]?key|credentials?)(?:[_-]?(?:key|value))?"""
                           r"""|site_id)['"]?\s*:[ \t]*)(.+)$""", re.IGNORECASE)


def _unquoted_secret(problem: Problem) -> Problem:
    """``problem`` with its source line's value of a secret-named key masked, and the URL credentials on it. The
    file could not be read, so which settings are secret is not known; this is what names them in a line. YAML's
    own message may quote the value too (``tag '!sk_live...' is not allowed``): each word of it is masked there."""
    line = problem.source_line
    if not line:
        return problem
    message, shown = problem.message, mask_url_credentials(line)
    caret = _caret_masked(line, problem.column, mask_url_credentials)
    if match := _SECRET_VALUE.search(shown):
        shown = shown[:match.start(2)] + MASK
        caret = min(caret, match.start(2) + 1)
        for word in re.findall(r"[^\s'\"{},\[\]]{4,}", match.group(2)):
            message = message.replace(word.lstrip("!&*"), MASK) if len(word.lstrip("!&*")) >= 4 else message
    return replace(problem, source_line=shown, message=mask_url_credentials(message),
                   caret=caret if shown != line else None)


def _caret_masked(line: str, column: int, mask: Callable[[str], str]) -> int:
    """Where the caret of ``column`` goes on ``line`` once masked: under what it points at, however the masks
    before it changed the line's length."""
    return len(mask(line[:column - 1])) + 1


def _schema_at(schema: dict | None, path: tuple) -> dict | None:
    """The part of a field's JSON Schema that a value at ``path`` inside the field must meet; None when the
    schema does not say (a mapping's own keys, ``anyOf``), so nothing is checked there."""
    for step in path:
        if not isinstance(schema, dict):
            return None
        if isinstance(step, int):
            schema = schema.get("items")
        elif step in schema.get("properties", {}):
            schema = schema["properties"][step]
        else:
            schema = schema.get("additionalProperties")
    return schema if isinstance(schema, dict) else None


def _as_written_where_unset(value: Any, environ) -> Any:
    """A setting's value expanded, each text whose ``${VAR}`` is unset left as written (for the schema check)."""
    if isinstance(value, str):
        try:
            return expand(value, environ)[0]
        except UnsetVariable:
            return value
    if isinstance(value, dict):
        return {key: _as_written_where_unset(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_written_where_unset(item, environ) for item in value]
    return value


def _secret_setting_problems(key: str, schema: dict, value: Any,
                             unset_inside: bool = False) -> list[tuple[tuple, str, bool]]:
    """What is wrong with a secret setting, in words that name its keys and what the schema wants, never a
    value (``setting 'oauth': client_auth must be one of "basic", "body"``), each with where it is inside the
    setting and whether that is a key. ``unset_inside``: a text still holding an unset ``${VAR}`` is known
    only at run time, and not checked."""
    if PayloadValidator({"properties": {key: schema}}).is_valid({key: value}):
        return []  # the usual case, without importing jsonschema (a tenth of the start-up) to say nothing
    from jsonschema import Draft202012Validator

    problems = []
    for error in Draft202012Validator(schema).iter_errors(value):
        if unset_inside and isinstance(error.instance, str) and "${" in error.instance:
            continue
        inner = tuple(error.absolute_path)
        at = f"setting '{key}'" + (f": {'.'.join(map(str, inner))}" if inner else "")
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            for name in sorted(set(error.instance) - set(known), key=str):
                problems.append((inner + (name,), f"{at} has no key {name!r}{_suggest(name, known)}", True))
        elif error.validator == "required":
            problems.append((inner, f"{at}: {error.message}", False))  # names a key, not a value
        elif error.validator in ("enum", "const"):
            allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
            choices = ", ".join(json.dumps(item, ensure_ascii=False) for item in allowed)
            problems.append((inner, f"{at} must be one of {choices}", False))
        elif error.validator == "type":
            problems.append((inner, f"{at} must be of type {error.validator_value}", False))
        else:
            problems.append((inner, f"{at} does not meet its schema's '{error.validator}' (the value is secret and "
                                    "not shown)", False))
    return problems


def _texts(value: Any) -> Iterator[str]:
    """Every text in ``value``, at any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def _around_variables(text: str) -> list[str]:
    """The literal parts of a text that holds ``${VAR}`` (none for a text without one: that is masked whole)."""
    if "${" not in text:
        return []
    return [part.strip() for part in re.split(r"\$\{[^}]*\}", text) if part.strip()]


def _only_unset_fail(schema: dict, value: Any) -> bool:
    """Whether every way ``value`` fails ``schema`` is at a text still holding an unset ``${VAR}`` (as written by
    :func:`_as_written_where_unset`): what the variable will hold is known only at run time."""
    from jsonschema import Draft202012Validator

    return all(isinstance(error.instance, str) and "${" in error.instance
               for error in Draft202012Validator(schema).iter_errors(value))


def _token_like(read: dict[str, set[str]], catalog) -> set[str]:
    """What the ``${VAR}`` of the settings read that is a secret on its own too: ``Bearer ${TOKEN}`` is masked
    whole, and a server that quotes the token alone must not show it. Only values that look like keys: a port,
    ``true`` or a host name masked wherever it appeared would change the JSON that --dry-run prints. In a
    catalog's secret setting that is eight characters or more, not a number or a word of JSON; elsewhere (a
    URL's ``?token=${T}``) also letters and digits both, without dots (a host name) or spaces."""
    secret = catalog.secret_settings if catalog is not None else frozenset()
    return {value for key, values in read.items() for value in values
            if len(value) >= 8 and not _PLAIN_VALUE.fullmatch(value) and (key in secret or _looks_like_a_key(value))}


def _looks_like_a_key(value: str) -> bool:
    """Letters and digits both, with no dot (a host name) or space: ``abc123~xyz789``, ``sk/live+Zm9v=``."""
    return bool(_TOKEN.fullmatch(value) and re.search("[0-9]", value) and re.search("[^\\W\\d_]", value))


_PLAIN_VALUE = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?|true|false|null", re.IGNORECASE)
_TOKEN = re.compile(r"[^\s.]+")


def _cut(message: str, most: int = 300) -> str:
    """A message that quotes a value (a 5,000-digit number, a long text) cut to a readable length."""
    return message if len(message) <= most else message[:most - 1] + "…"


def _mapping_names(declared: Any) -> set[str]:
    """The names the file gives its mappings (a name of another type is the schema check's problem)."""
    items = declared if isinstance(declared, list) else []
    return {item["name"] for item in items if isinstance(item, dict) and isinstance(item.get("name"), str)}


def _listed(value: Any) -> list:
    """``value`` when it is a list, else nothing: a value of the wrong type is the schema check's problem."""
    return value if isinstance(value, list) else []


def _dotted(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the file"


_CHECKED = object()  # a trigger compiled without errors and not kept


class _FileCompiler:
    """Compiles one parsed rule file; each ``_check`` method adds problems and carries on."""

    def __init__(self, source: Source, environ, *, keep: bool = True):
        self.source = source
        self.keep = keep  # False: check, and let go of what is compiled (lint)
        self.environ = os.environ if environ is None else environ
        self.problems: list[Problem] = list(source.problems)
        self.unset_settings: set[str] = set()  # settings whose ${VAR} is unset: known only at run time
        self.environment_values: dict[str, set[str]] = {}  # per setting, what each of its ${VAR} read
        # Trigger text -> its compiled trigger (None if it has errors) and problems: a trigger
        # written twice is compiled once, and the two mappings share it (it is immutable).
        # Not kept (lint): _CHECKED stands for a trigger without errors.
        self.triggers: dict[str, tuple[Trigger | object | None, list[Problem]]] = {}

    def report(self, path, code: str, message: str, *, severity=ERROR, key=False):
        self.problems.append(self.source.problem(path, Problem(code, message, severity), key=key))

    def _report_fields(self, problems: list[tuple[tuple, Problem]]):
        """Field mappings' problems: inside an expression, or at a key that is not text (YAML's ``on:``)."""
        for path, problem in problems:
            if isinstance(path, AtKey):
                self.problems.append(self.source.problem(tuple(path), problem, key=True))
            else:
                self.report_inside(path, problem)

    def report_inside(self, path, problem: Problem):
        self.problems.append(self.source.inside(path, problem.line, problem.column, problem))

    def run(self) -> tuple[str | None, Destination | None]:
        """The destination's name, and the destination itself when kept; problems go to ``self.problems``."""
        data = self.source.data
        if data is None:  # no YAML document, or only comments
            self.report((), "SY002", "the file is empty; a rule file has version, destination and mappings")
            return None, None
        self._check_schema(data)
        if not isinstance(data, dict):
            return None, None
        declared = data.get("destination")
        if isinstance(declared, dict):
            catalog, transport, settings = self._destination(declared)
        else:  # reported by the schema check; the triggers, fields and tests are still checked
            declared, catalog, transport, settings = {}, None, None, Settings({}, set())
        filters = self._filters(data.get("filters"))
        mappings = self._mappings(data.get("mappings"), catalog, settings)
        tests = self._tests(data.get("tests"), _mapping_names(data.get("mappings")))
        self._mask_secrets(settings)
        name = declared.get("name")
        if not isinstance(name, str) or catalog is None:
            return None, None
        if not self.keep:
            return name, None
        destination = Destination(
            name=name, catalog=catalog, transport=transport, settings=settings,
            filters=filters, mappings=[m for m in mappings if m is not None], tests=tests, file=self.source.file,
        )
        return name, destination

    def _mask_secrets(self, settings: Settings):
        """Secrets written literally in the file must not reach lint output through a quoted source line."""
        secrets = secret_values(settings)
        if not secrets:
            return
        def hidden(text: str) -> str:
            for secret in secrets:
                text = text.replace(secret, MASK)
            return text

        masked = []
        for problem in self.problems:
            line, caret = problem.source_line, None
            shown = hidden(line) if line else line
            if line and shown and shown != line:
                caret = min(_caret_masked(line, problem.column, hidden), len(shown) + 1)
            masked.append(replace(problem, source_line=shown, message=hidden(problem.message), caret=caret))
        self.problems = masked

    # -- structure -------------------------------------------------------------------------

    def _check_schema(self, data):
        if _rules_check()(data):
            return
        with any_size():  # jsonschema's messages write the value: `version: 99...9` may have 5,000 digits
            self._report_schema_errors(data)

    def _report_schema_errors(self, data):
        for error in _rules_validator().iter_errors(data):
            path = tuple(error.absolute_path)
            if path[:1] in (("mappings",), ("tests",)) and path[2:3] in (("fields",), ("event",)) and \
                    any(_not_json(error.instance, path)):
                continue  # a date or bytes there has its own problem, at the value and in words
            if error.validator == "additionalProperties":
                allowed = error.schema.get("properties", {})
                for extra in sorted(set(error.instance) - set(allowed)):
                    self.report(path + (extra,), "SY002",
                                f"unknown key '{extra}' in {_dotted(path)}{_suggest(extra, allowed)}", key=True)
            elif error.validator == "required":
                self.report(path, "SY002", _cut(f"{_dotted(path)}: {error.message}"))
            elif error.validator in ("anyOf", "oneOf"):
                best = min(error.context, key=lambda e: len(e.schema_path), default=error) if error.context else error
                self.report(path, "SY002", _cut(f"{_dotted(path)}: {best.message}"))
            elif error.validator == "type" and error.validator_value == "string" and (
                    error.instance is None or isinstance(error.instance, (bool, int, float))):
                self.report(path, "SY002", f"{_dotted(path)}: YAML reads this as {_yaml_kind(error.instance)}, "
                                           "not text: quote it")
            elif error.validator == "const" and path == ("version",):
                self.report(path, "SY002",
                            _cut(f"unsupported version {error.instance!r}: this Switchyard reads version 1"))
            else:
                self.report(path, "SY002", _cut(f"{_dotted(path)}: {error.message}"))

    def _destination(self, declared: dict):
        where = ("destination",)
        catalog = None
        name = declared.get("catalog")
        if isinstance(name, str):
            catalog = catalogs.load(name)
            if catalog is None:
                known = catalogs.available()
                self.report(where + ("catalog",), "SY301",
                            f"unknown catalog '{name}' (known: {', '.join(known)}){_suggest(name, known)}")
        settings = self._settings(declared.get("settings"), catalog)
        transport = declared.get("transport")
        if catalog is not None:
            if transport is None:
                transport = catalog.default_transport
            elif isinstance(transport, str) and transport not in catalog.transports:
                self.report(where + ("transport",), "SY306",
                            f"catalog '{catalog.name}' has no transport '{transport}' "
                            f"(choose {', '.join(catalog.transports)}){_suggest(transport, catalog.transports)}")
            if isinstance(transport, str):
                self._needed_settings(declared, catalog, transport, settings)
        return catalog, transport, settings

    def _needed_settings(self, declared: dict, catalog, transport: str, settings: Settings):
        """SY307 for a setting the transport cannot deliver without, written nowhere in the file (or empty): a
        warning, since test and --dry-run deliver nothing; one whose ${VAR} is unset is known only at run time."""
        for group in catalog.needs(transport):
            if not any(settings.get(name) not in (None, "") or name in self.unset_settings for name in group):
                wanted = " or ".join(f"'{name}'" for name in group)
                where = ("destination", "settings") if isinstance(declared.get("settings"), dict) else ("destination",)
                self.report(where, "SY307", f"catalog '{catalog.name}' over {transport} needs the setting {wanted} "
                                            "to deliver", severity=WARNING)

    def _settings(self, declared, catalog) -> Settings:
        where = ("destination", "settings")
        values: dict = {}
        secret: set[str] = set()
        if not isinstance(declared, dict):
            return Settings(values, secret)
        partly_unset: dict = {}  # settings with an unset ${VAR} inside: checked with it as written, not kept
        for key, value in declared.items():
            warned = len(self.problems)
            expanded, from_env = self._expand(where + (key,), value)
            if expanded is None or any(problem.code == "SY501" for problem in self.problems[warned:]):
                # Known only at run time, which refuses to deliver until it is set. An OAuth block is still
                # checked, its unset secret standing as written: not as if the file had left the secret out.
                self.unset_settings.add(key)
                if expanded is not None:
                    partly_unset[key] = _as_written_where_unset(value, self.environ)
            else:
                values[key] = expanded
            if from_env:
                secret.add(key)
        if catalog is not None and catalog.settings_schema:
            properties = catalog.settings_schema.get("properties", {})
            secret |= {k for k, spec in properties.items() if spec.get("x-secret")}
            for key, value in {**values, **partly_unset}.items():
                if key not in properties and catalog.settings_schema.get("additionalProperties") is False:
                    self.report(where + (key,), "SY306",
                                f"unknown setting '{key}' for catalog '{catalog.name}'{_suggest(key, properties)}",
                                key=True)
                elif key in properties and not (key in partly_unset and _only_unset_fail(properties[key], value)):
                    if key in secret:
                        for inner, message, at_key in _secret_setting_problems(key, properties[key], value,
                                                                                key in partly_unset):
                            self.report(where + (key, *inner), "SY306", message, key=at_key)
                        continue
                    labelled = {"title": f"setting '{key}'", **properties[key]}
                    for message in PayloadValidator({"properties": {key: labelled}}).errors({key: value}):
                        self.report(where + (key,), "SY306", message)
        # What a secret setting writes beside a ${VAR}, or in a setting left out for an unset one, is masked
        # too: "Basic sk_literal_AAA ${USER}" never appears expanded in the file's lines.
        written = {part for key in secret if key in declared for text in _texts(declared[key])
                   for part in _around_variables(text) if len(part) >= 8}
        written |= {text for key in partly_unset if key in secret  # left out of the settings, so not known there
                    for text in _texts(partly_unset[key]) if "${" not in text and len(text) >= 8}
        return Settings(values, secret, _token_like(self.environment_values, catalog) | written)

    def _expand(self, path, value):
        """Expand ``${VAR}`` in a settings value (recursively); unset variables leave the value out."""
        if isinstance(value, str):
            try:
                expanded = expand(value, self.environ)
                self.environment_values.setdefault(path[2], set()).update(referenced(value, self.environ))
                return expanded
            except UnsetVariable as unset:
                self.problems.append(self.source.inside(path, 1, unset.offset + 1, Problem(
                    "SY501", f"{unset} (set it, or write ${{{unset.name}:-default}})", WARNING)))
                return None, False
        if isinstance(value, dict):
            out, any_env = {}, False
            for key, item in value.items():
                expanded, from_env = self._expand(path + (key,), item)
                if expanded is not None:
                    out[key] = expanded
                any_env |= from_env
            return out, any_env
        if isinstance(value, list):
            pairs = [self._expand(path + (i,), item) for i, item in enumerate(value)]
            return [v for v, _ in pairs], any(e for _, e in pairs)
        return value, False

    # -- filters and mappings --------------------------------------------------------------

    def _trigger(self, path, text):
        if not isinstance(text, str):
            return None
        if text not in self.triggers:
            try:
                trigger = compile_trigger(text)
                self.triggers[text] = (trigger if self.keep else _CHECKED, trigger.warnings)
            except TriggerError as error:
                self.triggers[text] = (None, error.problems)
        trigger, problems = self.triggers[text]
        for problem in problems:  # positions within the text: each place it is written gets its own
            if problem.code == "SY101" and problem.message.startswith("unterminated string") and \
                    (comment := self._comment_after(path, text)):
                problem = replace(problem, message=f"unterminated string: YAML read '{comment}' as a comment and "
                                                   "ended the trigger before it; quote the whole trigger")
            self.report_inside(path, problem)
        return trigger

    def _comment_after(self, path, text: str) -> str | None:
        """The comment YAML cut an unquoted one-line value at ``path`` short with (`` #`` and what follows)."""
        line, column = self.source.position(path)
        written = self.source.lines[line - 1] if 0 < line <= len(self.source.lines) else ""
        after = written[column - 1 + len(text):]
        if written[column - 1:column - 1 + len(text)] != text or not after.lstrip().startswith("#"):
            return None
        return after.lstrip()[:40]

    def _filters(self, declared) -> list:
        filters = []
        for index, item in enumerate(declared if isinstance(declared, list) else []):
            if not isinstance(item, dict):
                continue
            where = ("filters", index)
            trigger = self._trigger(where + ("if",), item.get("if"))
            then = item.get("then")
            fields = []
            if isinstance(then, dict):
                for position, text in enumerate(_listed(then.get("drop_fields"))):
                    if not isinstance(text, str):
                        continue
                    try:
                        fields.append(parse_path(text))
                    except ValueError as error:
                        self.report(where + ("then", "drop_fields", position), "SY002", f"bad field path: {error}")
            if trigger is not None and (then == "drop" or fields) and self.keep:
                filters.append(Filter(str(item.get("name")), trigger, then == "drop", tuple(fields),
                                      item.get("enabled", True) is not False))
        return filters

    def _mappings(self, declared, catalog, settings) -> list:
        mappings: list[Mapping | None] = []
        names: dict[str, int] = {}
        for index, item in enumerate(declared if isinstance(declared, list) else []):
            if not isinstance(item, dict):
                mappings.append(None)
                continue
            where = ("mappings", index)
            name = item.get("name")
            if isinstance(name, str):
                if name in names:
                    self.report(where + ("name",), "SY401",
                                f"mapping name '{name}' is already used by mappings[{names[name]}]")
                else:
                    names[name] = index
            trigger = self._trigger(where + ("trigger",), item.get("trigger"))
            action = self._action(where, item.get("action"), catalog)
            from_settings: dict[str, str] = {}
            if action is not None:
                mapper = self._fields(where, item, action, settings, from_settings)
            else:
                mapper = None
                self._fields_without_action(where, item, catalog)
            if None in (trigger, action, mapper) or not isinstance(name, str) or not self.keep:
                mappings.append(None)
                continue
            mappings.append(Mapping(name, trigger, action, mapper, item.get("enabled", True) is not False,
                                    from_settings))
        return mappings

    def _action(self, where, name, catalog):
        if catalog is None or not isinstance(name, str):
            return None
        action = catalog.actions.get(name)
        if action is None:
            known = sorted(catalog.actions)
            self.report(where + ("action",), "SY302",
                        f"catalog '{catalog.name}' has no action '{name}' (actions: {', '.join(known)})"
                        f"{_suggest(name, known)}")
        return action

    def _fields_without_action(self, where, item, catalog):
        """An unknown action: still check the fields' expressions, and their names against the action
        the SY302 suggests, so one run shows every mistake."""
        declared = item.get("fields")
        if not isinstance(declared, dict):
            return
        name = item.get("action")
        close = difflib.get_close_matches(str(name), list(catalog.actions), n=1, cutoff=0.6) if catalog else []
        if close:
            self._unknown_fields(where, declared, catalog.actions[close[0]])
        self._check_expressions(where, declared)

    def _unknown_fields(self, where, declared: dict, action) -> set:
        """Report SY303 for each field ``action`` does not have; their expressions are still checked."""
        unknown = {key for key in declared if key not in action.properties and not action.open}
        for key in declared:
            if key in unknown:
                self.report(where + ("fields", key), "SY303",
                            f"action '{action.name}' has no field '{key}' "
                            f"(fields: {', '.join(action.properties)}){_suggest(key, action.properties)}", key=True)
        return unknown

    def _check_expressions(self, where, spec: dict):
        """Report the problems of fields' expressions that are not otherwise compiled."""
        if spec:
            _, problems = compile_fields(spec, where=where + ("fields",))
            self._report_fields(problems)

    def _fields(self, where, item, action, settings, from_settings: dict[str, str]):
        """The mapping's compiled fields; ``from_settings`` gets each field that falls back to a setting."""
        declared = item.get("fields") or {}
        if not isinstance(declared, dict):
            return None
        unknown = self._unknown_fields(where, declared, action)
        self._check_expressions(where, {key: declared[key] for key in unknown})
        for key, value in declared.items():
            choices = action.properties.get(key, {}).get("enum", ())
            if isinstance(value, str) and value in choices:
                # A bare word is a JMESPath field lookup: `method: PUT` reads the event's PUT field (null).
                self.report(where + ("fields", key), "SY305",
                            f"'{value}' here is a JMESPath field lookup, not the text '{value}'; "
                            f"write \"'{value}'\" for the literal", severity=WARNING)
        spec = {key: value for key, value in declared.items() if key in action.properties or action.open}
        if item.get("defaults", True) is not False:
            spec = merge_defaults(spec, action.defaults())
        for key, prop in action.properties.items():
            setting = prop.get("x-setting")
            if key not in spec and setting and setting in settings:
                spec[key] = {"$literal": settings[setting]}
                from_settings[key] = setting
        for key in action.required:
            if spec.get(key) is None and action.properties.get(key, {}).get("x-setting") not in self.unset_settings:
                self.report(where + ("fields",) if "fields" in item else where + ("action",), "SY304",
                            f"required field '{key}' of action '{action.name}' is not mapped and has no default")
        # Payload keys follow the action's field order, so calls read the same whatever the mapping's order.
        order = {key: index for index, key in enumerate(action.properties)}
        spec = dict(sorted(spec.items(), key=lambda pair: order.get(pair[0], len(order))))
        mapper, problems = compile_fields(spec, where=where + ("fields",))
        self._report_fields(problems)
        for key, value in mapper.literal_values().items():
            prop = action.properties.get(key)
            if prop is None:
                continue
            for message in action.field_errors(key, value):
                self.report(where + ("fields", key), "SY305", message)
        for key, inner, value in mapper.nested_literals():
            schema = _schema_at(action.properties.get(key), inner)
            if schema is not None:
                label = "/".join(map(str, (key, *inner)))
                for message in PayloadValidator({"properties": {label: schema}}).errors({label: value}):
                    self.report(where + ("fields", key, *inner), "SY305", message)
        return mapper

    # -- tests -----------------------------------------------------------------------------

    def _unlike_json(self, event: Any, where: tuple, warned: set[tuple[int, int]]) -> None:
        """SY006 for each unquoted value of a test event that YAML 1.1 reads otherwise than JSON would
        (``zip: 010`` is 8, ``1:30`` is 90, ``1e3`` is text, ``yes`` is true): the test runs on an event its
        author may not have meant. A warning: it concerns a test, and must not stop ``run``. ``warned``: the
        places warned of already (an anchor's values, used by several tests)."""
        unlike = self.source.unlike_json
        for path, value in _scalars(event, where):
            line, column = self.source.position(path)
            found = unlike.get((line - 1, column - 1))
            if found is None or found[1] is not value and found[1] != value or (line, column) in warned:
                continue
            warned.add((line, column))
            text = found[0]
            try:
                meant = f"JSON reads it as {json.dumps(json.loads(text))}"
            except ValueError:
                meant = "JSON cannot read it"
            self.report(path, "SY006", f"a test event is JSON, and YAML reads {text} here as "
                                       f"{json.dumps(value) if not isinstance(value, float) else repr(value)} "
                                       f"({meant}): write the JSON value you mean, or quote it for the text",
                        severity=WARNING)

    def _tests(self, declared, mapping_names: set) -> list:
        cases = []
        warned: set[tuple[int, int]] = set()
        for index, item in enumerate(declared if isinstance(declared, list) else []):
            if not isinstance(item, dict) or not isinstance(item.get("event"), dict):
                continue
            where = ("tests", index)
            for kind in ("expect", "errors"):
                for position, expected in enumerate(_listed(item.get(kind))):
                    name = expected.get("mapping") if isinstance(expected, dict) else None
                    if isinstance(name, str) and name not in mapping_names:
                        self.report(where + (kind, position, "mapping"), "SY403",
                                    f"test refers to unknown mapping '{name}'{_suggest(name, mapping_names)}")
            # Events are JSON: a value YAML reads as something else (an unquoted date, !!binary) would reach the
            # rules as no event ever can.
            for path, value, is_key in _not_json(item["event"], where + ("event",)):
                self.report(path, "SY002", f"a test event is JSON, and YAML reads this {'key' if is_key else 'value'} "
                                           f"as {_yaml_kind(value)}, not text: quote it", key=is_key)
            if self.source.unlike_json:
                self._unlike_json(item["event"], where + ("event",), warned)
            line, _ = self.source.position(where)
            cases.append(TestCase(str(item.get("name")), item["event"], item.get("expect"), item.get("errors"),
                                  item.get("discarded"), line))
        return cases


def _scalars(value: Any, path: tuple) -> Iterator[tuple[tuple, Any]]:
    """``(path, value)`` of each value in ``value`` that is not an object or an array."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _scalars(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _scalars(item, path + (index,))
    else:
        yield path, value


def _not_json(value: Any, path: tuple) -> Iterator[tuple[tuple, Any, bool]]:
    """``(path, value, is_key)`` of each value in a YAML document that JSON has no such value for (dates,
    bytes), and of each key that is not text (``on:``, ``7:``: JSON keys are text, so no event has them)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                yield path + (key,), key, True
            yield from _not_json(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _not_json(item, path + (index,))
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        yield path, value, False


def _yaml_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "bytes" if isinstance(value, (bytes, bytearray)) else "a date" if isinstance(value, date) else "null"
