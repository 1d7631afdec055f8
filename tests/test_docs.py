"""The docs say what the code does: checked where a test can read both."""
from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta

import pytest

from conftest import ROOT
from engine.catalog import load as load_catalog
from engine.summary import Summary


def _overview_samples(text: str) -> list[list[str]]:
    """The ```text blocks that show run's overview."""
    blocks = re.findall(r"```text\n(.*?)```", text, re.DOTALL)
    return [block.splitlines() for block in blocks if block.startswith("events read")]


def _rendered() -> list[str]:
    summary = Summary(events=1, sent=1, calls=Counter({("crm", "Orders"): 1}), delivered=Counter({("crm", "Orders"): 1}))
    return summary.render(False, "deadletter.ndjson").splitlines()


@pytest.mark.parametrize("page", ["README.md", "docs/cli.md"])
def test_the_overview_samples_have_the_rows_and_columns_run_prints(page):
    samples = _overview_samples((ROOT / page).read_text(encoding="utf-8"))
    assert samples, f"{page} shows no overview"
    rendered = _rendered()
    labels = [re.sub(r"\s+\d+$", "", line) for line in rendered[:7]]
    header = rendered[7].split()
    for sample in samples:
        assert [re.sub(r"\s+\d+$", "", line) for line in sample[:7]] == labels
        assert sample[7].split() == header
        for row in sample[8:]:
            if row.startswith("  ") and "/" in row:
                # a number under each column, adding up as the overview's do
                calls, delivered, retried, refused, failed, _ = (int(v) for v in row.split()[-len(header) + 3:])
                assert calls == delivered + refused + failed and retried <= delivered, row


@pytest.mark.parametrize("catalog", ["customerio", "webhook"])
def test_the_docs_name_each_catalogs_default_transport(catalog):
    default = load_catalog(catalog).default_transport
    actions = (ROOT / "docs/actions.md").read_text(encoding="utf-8")
    row = next(line for line in actions.splitlines() if line.startswith(f"| `{catalog}` |"))
    assert row.split("|")[2].strip().startswith(f"`{default}`"), row
    if catalog == "customerio":
        page = (ROOT / "docs/customerio.md").read_text(encoding="utf-8")
        assert f"Transports: `{default}` (the default)" in page
        assert f"default transport, `{default}`" in page
        assert "(the default for now)" not in page


def test_the_readme_says_how_long_the_example_data_spans():
    stamps = sorted(datetime.fromisoformat(stamp.replace("Z", "+00:00")) for stamp in
                    re.findall(r'"timestamp": "([^"]+)"', (ROOT / "examples/events.jsonl").read_text()))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert stamps[-1] - stamps[0] <= timedelta(days=1)
    assert "runs a day of one shop's events" in readme
