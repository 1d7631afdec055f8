"""The rule files of the delivery benchmarks: the bundled examples, pointed at a local sink.

The delivery rows of benchmarks/run.py send what rules/customerio.yaml, rules/userengage.yaml and
rules/webhook.yaml send, over HTTP to benchmarks/sink.py; only where the calls go changes, so those
rows measure the same mappings as the end-to-end row. tests/test_benchmarks.py lints each file written here.
"""
from __future__ import annotations

from pathlib import Path

import yaml

RULES = Path(__file__).resolve().parent.parent / "rules"
WEBHOOK_HOST = "https://crm.example"  # where rules/webhook.yaml's mappings name their own URLs


def _load(name: str) -> dict:
    return yaml.safe_load((RULES / name).read_text(encoding="utf-8"))


class _Dumper(yaml.SafeDumper):
    """Writes multi-line triggers as ``|`` blocks, as the rule files spell them."""


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def _dump(rules: dict, source: str) -> str:
    return f"# rules/{source}, sent to a local sink by benchmarks/run.py (benchmarks/delivery.py)\n" + \
        yaml.dump(rules, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def _over_http(destination: dict, settings: dict) -> dict:
    """``destination`` with ``transport: http`` and ``settings``, keys in the order the examples use."""
    return {"name": destination["name"], "catalog": destination["catalog"], "transport": "http",
            "settings": settings}


def customerio_over_http(sink_url: str) -> str:
    """rules/customerio.yaml over ``transport: http`` to ``sink_url``, with placeholder credentials."""
    rules = _load("customerio.yaml")
    rules["destination"] = _over_http(rules["destination"], {"site_id": "x", "api_key": "y", "base_url": sink_url})
    return _dump(rules, "customerio.yaml")


def webhook_over_http(sink_url: str) -> str:
    """rules/webhook.yaml over ``transport: http``, every URL it names moved to ``sink_url``.

    Its ``tests`` are left out: they expect the example's own URLs.
    """
    rules = _load("webhook.yaml")
    rules["destination"] = _over_http(rules["destination"], {"url": f"{sink_url}/hook"})
    for mapping in rules["mappings"]:
        fields = mapping.get("fields") or {}
        if isinstance(fields.get("url"), str):
            fields["url"] = fields["url"].replace(WEBHOOK_HOST, sink_url)
    rules.pop("tests", None)
    return _dump(rules, "webhook.yaml")


def write_rules(folder: Path, sink_url: str) -> dict[str, Path]:
    """Write the delivery benchmarks' rules under ``folder``; the paths to run, by benchmark.

    ``workspace``: the Customer.io pack as shipped (its default transport is the embedded workspace);
    ``http``: the pack over HTTP to the sink; ``workspace+webhook`` and ``http+webhook``: a folder of
    each with the webhook example over HTTP to the sink beside it; ``workspace+userengage+webhook``:
    the README's main job, both destinations' packs as shipped (each to its embedded stand-in in
    one file) and the webhook example to the sink.
    """
    texts = {"customerio.yaml": (RULES / "customerio.yaml").read_text(encoding="utf-8"),
             "customerio-http.yaml": customerio_over_http(sink_url),
             "webhook-http.yaml": webhook_over_http(sink_url),
             "userengage.yaml": (RULES / "userengage.yaml").read_text(encoding="utf-8")}
    paths = {}
    for name, files in {"workspace+webhook": ("customerio.yaml", "webhook-http.yaml"),
                        "http+webhook": ("customerio-http.yaml", "webhook-http.yaml"),
                        "workspace+userengage+webhook": ("customerio.yaml", "userengage.yaml",
                                                         "webhook-http.yaml")}.items():
        paths[name] = folder / name
        paths[name].mkdir(parents=True, exist_ok=True)
        for file in files:
            (paths[name] / file).write_text(texts[file], encoding="utf-8")
    paths["workspace"] = RULES / "customerio.yaml"
    paths["http"] = paths["http+webhook"] / "customerio-http.yaml"
    return paths
