"""The page's content, read from the HTML text."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from report_xss import XSS_ACCOUNT, XSS_PROMPT

from distillguard.report import write_report
from distillguard.report.charts import campaign_graph, spring_layout
from distillguard.report.html import capability, infrastructure_rows, listed_edges, mask, script_json


@pytest.fixture(scope="module")
def page(scan) -> str:
    return write_report(scan.out_dir, scan.store).read_text()


def _json_block(page: str, block_id: str):
    match = re.search(rf'<script type="application/json" id="{block_id}">(.*?)</script>', page, re.S)
    assert match, block_id
    return json.loads(match.group(1))


def test_self_contained(page: str) -> None:
    assert "Plotly.newPlot" in page and len(page) > 3_000_000  # plotly.js is inline
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', page)
    assert "default-src 'none'" in page


def test_overview_and_campaign_list(page: str, scan) -> None:
    assert "1,176</b>exchanges" in page and "392</b>accounts" in page
    for c in scan.campaigns:
        assert f'<tr data-campaign="{c["id"]}">' in page
    assert "LabX" in page and "82%" in page and "unattributed" in page
    figures = _json_block(page, "figures")
    assert set(figures) == {"capability_mix", "graph-0", "timeline-0", "graph-1", "timeline-1"}
    names = {t["name"] for t in figures["capability_mix"]["data"]}
    assert names == {"general", "cot_elicitation", "agentic_coding"}


def test_large_campaign_is_drawn_by_network(page: str) -> None:
    figures = _json_block(page, "figures")
    nodes = figures["graph-0"]["data"][-1]
    assert len(nodes["text"]) == 44  # 350 accounts over 44 /24 prefixes
    assert "350 accounts drawn as 44 nodes, one per network prefix" in page
    assert len(figures["graph-1"]["data"][-1]["text"]) == 12  # small campaign: one node per account


def test_markup_is_escaped_everywhere(page: str) -> None:
    assert XSS_PROMPT not in page and "<b onmouseover" not in page
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page  # the prompt, as text
    assert "&lt;b&gt;bold&lt;/b&gt;" in page  # attribution evidence
    rows = _json_block(page, "accounts-data")
    assert XSS_ACCOUNT in [r[0] for r in rows]  # intact after JSON.parse, shown by textContent
    hover = " ".join(" ".join(t["text"] or []) for t in _json_block(page, "figures")["graph-1"]["data"][-1:])
    assert "&lt;b onmouseover=alert(1)&gt;" in hover


def test_accounts_table_rows(page: str) -> None:
    rows = _json_block(page, "accounts-data")
    assert len(rows) == 392
    assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)
    flagged = next(r for r in rows if r[3] == "C1")
    assert flagged[4].startswith("10.0.") and flagged[5].startswith("AS64500")
    assert flagged[6] == [["template_reuse", 0.4, "one template in 3 of 3 requests"]]


def test_redaction_masks_prompts(scan) -> None:
    page = write_report(scan.out_dir, scan.store, redact=True, max_examples=1).read_text()
    assert "Think step by step" not in page and "sum_squares" not in page
    assert "prompts redacted" in page
    assert page.count('<div class="prompt">') == 2  # one example for each campaign's template


def test_script_json_cannot_close_the_block() -> None:
    text = script_json(json.dumps({"p": "</script><script>alert(1)</script>&"}))
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"p": "</script><script>alert(1)</script>&"}


def test_mask_keeps_shape_only() -> None:
    assert mask("Solve: x+1 = 2?") == "•••••: •+• = •?"


def test_graph_groups_by_asn_when_prefixes_are_too_many() -> None:
    accounts = [f"a{i}" for i in range(50)]
    infra = {
        a: {"ip_prefix": f"10.0.{i}.0/24", "asn": 64500 + i % 3, "asn_org": "Host"}
        for i, a in enumerate(accounts)
    }
    edges = [{"src": "a0", "dst": "a1", "kind": "shared_template", "weight": 1}, {"src": "a0", "dst": "zz"}]
    view = campaign_graph(accounts, edges, infra, {}, max_nodes=10)
    assert view.grouped_by == "ASN" and view.nodes == 3 and view.edges == 1


def test_spring_layout_pulls_linked_nodes_together() -> None:
    pos = spring_layout(20, [(0, 1, 1.0), (2, 3, 1.0)], seed=1)
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    others = dist[0, 4:].mean()
    assert dist[0, 1] < others / 2 and dist[2, 3] < others / 2


def test_link_campaign_format_is_read(page: str, scan) -> None:
    c2 = scan.campaigns[1]
    assert capability(c2) == ("agentic_coding", {"agentic_coding": 1.0})
    assert infrastructure_rows(c2["infrastructure"]["asns"]) == [("AS64510 Hosting", 300)]
    assert len(listed_edges(c2)) == 2  # only the examples; the full edges come from the store
    assert "C2 — 350 accounts (350 flagged)" in page and "agentic_coding, unattributed</summary>" in page
    assert "<td>AS64510 Hosting</td>" in page


def test_figures_carry_the_report_template_and_leave_plotly_default_alone() -> None:
    import plotly.graph_objects as go
    import plotly.io as pio

    from distillguard.report.charts import TEMPLATE, capability_figure

    before = pio.templates.default
    fig = capability_figure([{"bucket": 1, "capability": "general", "requests": 3}], "t")
    graph = campaign_graph(["a1", "a2"], [{"src": "a1", "dst": "a2", "kind": "ip", "weight": 1.0}], {}, {})
    assert pio.templates.default == before
    want = go.Figure(layout={"template": TEMPLATE}).to_plotly_json()["layout"]["template"]
    for figure in (fig, graph.figure):
        assert figure.to_plotly_json()["layout"]["template"] == want
