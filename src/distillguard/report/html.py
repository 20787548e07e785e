"""Render the scan into one self-contained HTML page.

Everything the page needs is inside it: plotly.js inline, figures and the accounts table as JSON
in `<script type="application/json">` blocks (with `<`, `>` and `&` escaped so no text can close
the block), and prompts in autoescaped HTML. Prompts are attacker-controlled text: they reach the
page only through Jinja autoescape or `textContent`, never as markup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import plotly.offline
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from plotly.io.json import to_json_plotly

from distillguard.link.edges import split_node
from distillguard.report.charts import campaign_graph, capability_figure, report_template
from distillguard.report.data import StoreViews, read_outputs, read_store
from distillguard.schema import VERDICTS
from distillguard.store import EventStore

MAX_ACCOUNT_ROWS = 25_000  # accounts embedded in the table, highest scores first; accounts.csv has all
MAX_CAMPAIGN_SECTIONS = 60  # campaigns drawn in full, largest first; the list shows every campaign
TEMPLATES_PER_CAMPAIGN = 5
INFRA_ROWS = 12
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def script_json(text: str) -> Markup:
    """JSON text made safe inside a <script> element (it cannot contain '</script' any more)."""
    return Markup(_JSON_ESCAPE_RE.sub(lambda m: _JSON_ESCAPES[m.group()], text))


def mask(text: str) -> str:
    """Redact a prompt: letters and digits become '•'; spacing and punctuation stay to show templating."""
    return re.sub(r"\w", "•", text)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("distillguard.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["script_json"] = lambda obj: script_json(orjson.dumps(obj).decode())
    return env


def write_report(out_dir: Path, store: EventStore, *, redact: bool = False, max_examples: int = 3) -> Path:
    """Write out_dir/report.html from the scan's output files and its store; returns the path."""
    outputs = read_outputs(out_dir)
    campaigns = sorted(outputs.campaigns, key=lambda c: (-len(c.get("accounts", ())), str(c["id"])))
    views = read_store(store, campaigns, TEMPLATES_PER_CAMPAIGN, max_examples)
    account_info = {a["account_id"]: a for a in outputs.accounts}

    with report_template():  # one validation of the template for every figure
        figures, sections = _figures(campaigns, views, account_info, redact)

    accounts = sorted(outputs.accounts, key=lambda a: -a["score"])
    rows = [_account_row(a, views) for a in accounts[:MAX_ACCOUNT_ROWS]]
    page = (
        _environment()
        .get_template("report.html.j2")
        .render(
            summary=outputs.summary,
            verdicts=[(v, outputs.summary.get("verdicts", {}).get(v, 0)) for v in VERDICTS],
            campaigns=[_campaign_row(c) for c in campaigns],
            sections=sections,
            accounts_json=rows,
            accounts_total=len(accounts),
            campaign_ids=sorted({str(c["id"]) for c in campaigns}),
            figures_json=script_json(to_json_plotly({k: f.to_plotly_json() for k, f in figures.items()})),
            plotlyjs=Markup(plotly.offline.get_plotlyjs()),
            redact=redact,
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )
    )
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _figures(
    campaigns: Sequence[Mapping[str, Any]],
    views: StoreViews,
    account_info: Mapping[str, Mapping[str, Any]],
    redact: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report's figures by id, and the drawn campaigns' sections."""
    figures: dict[str, Any] = {
        "capability_mix": capability_figure(
            views.capability_mix, f"Requests per {views.bucket} by capability"
        )
    }
    sections = []
    for i, campaign in enumerate(campaigns[:MAX_CAMPAIGN_SECTIONS]):
        section = _campaign_section(campaign, views, account_info, redact)
        edges = views.edges.get(str(campaign["id"])) or listed_edges(campaign)
        graph = campaign_graph(
            campaign.get("accounts", []), edges, views.infrastructure, account_info, seed=i
        )
        figures[f"graph-{i}"] = graph.figure
        figures[f"timeline-{i}"] = capability_figure(
            views.campaign_timelines.get(str(campaign["id"]), []), f"Campaign requests per {views.bucket}"
        )
        section.update(index=i, graph_nodes=graph.nodes, graph_edges=graph.edges, grouped_by=graph.grouped_by)
        sections.append(section)
    return figures, sections


def listed_edges(campaign: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Edges written in campaigns.json: a flat {src, dst, kind, weight} list, or per-kind examples."""
    out = []
    for e in campaign.get("edges", []):
        if "examples" in e:
            out += [{**x, "kind": e["kind"]} for x in e["examples"]]
        else:
            out.append(e)
    return out


def capability(campaign: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    """(dominant capability, {capability: share}); campaigns.json may give the mix as `capability`."""
    cap = campaign.get("capability")
    mix = campaign.get("capability_mix") or (cap if isinstance(cap, Mapping) else {})
    if isinstance(cap, Mapping):
        cap = max(cap, key=cap.__getitem__) if cap else ""
    return str(cap or ""), dict(mix)


def _confidence(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.0%}" if value <= 1 else f"{value:g}"
    return str(value or "")


def _campaign_row(c: Mapping[str, Any]) -> dict[str, Any]:
    attribution = c.get("attribution") or {}
    return {
        "id": str(c["id"]),
        "size": len(c.get("accounts", ())),
        "volume": c.get("volume", 0),
        "capability": capability(c)[0],
        "actor": attribution.get("actor") or "unattributed",
        "confidence": _confidence(attribution.get("confidence")) if attribution.get("actor") else "",
        "first_seen": c.get("first_seen", ""),
        "last_seen": c.get("last_seen", ""),
    }


def infrastructure_rows(value: Any) -> list[tuple[str, Any]]:
    """Rows of one infrastructure table: from {key: count}, or [{value|asn, org, requests|accounts}]."""
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    else:
        items = [
            (
                str(x["value"]) if "value" in x else f"AS{x.get('asn')} {x.get('org') or ''}".strip(),
                next((x[k] for k in ("requests", "accounts", "count") if k in x), ""),
            )
            for x in value or ()
        ]
    if all(isinstance(v, int | float) for _, v in items):
        items.sort(key=lambda kv: -kv[1])
    return items[:INFRA_ROWS]


def _campaign_section(
    c: Mapping[str, Any], views: StoreViews, account_info: Mapping[str, Mapping[str, Any]], redact: bool
) -> dict[str, Any]:
    cid = str(c["id"])
    members = [
        account_info[a] for a in {split_node(n)[0] for n in c.get("accounts", ())} if a in account_info
    ]
    templates = [
        {**t, "examples": [mask(e) if redact else e for e in t["examples"]]}
        for t in views.templates.get(cid, [])
    ]
    infra = c.get("infrastructure") or {}
    attribution = c.get("attribution") or {}
    return {
        **_campaign_row(c),
        "max_score": max((float(m["score"]) for m in members), default=0.0),
        "flagged": sum(1 for m in members if m["verdict"] != "allow"),
        "capability_mix": sorted(capability(c)[1].items(), key=lambda kv: -kv[1]),
        "evidence": [_evidence_row(e) for e in attribution.get("evidence", [])],
        "templates": templates,
        "infrastructure": [(key.replace("_", " "), infrastructure_rows(rows)) for key, rows in infra.items()],
    }


_EVIDENCE_FIELDS = ("type", "value", "matched_accounts", "coverage", "benign_matches", "likelihood_ratio")


def _evidence_row(e: Any) -> dict[str, Any]:
    """One matched indicator as a table row; free-text evidence (older campaigns.json) as its value."""
    if not isinstance(e, Mapping):
        note = {"type": "note", "value": str(e), "also_matches_benign": False}
        return dict.fromkeys(_EVIDENCE_FIELDS) | note
    row = {k: e.get(k) for k in _EVIDENCE_FIELDS}
    return row | {"also_matches_benign": bool(e.get("also_matches_benign"))}


def _account_row(a: Mapping[str, Any], views: StoreViews) -> list[Any]:
    """Compact row: id, score, verdict, campaign, prefix, network, reasons (detailed when stored)."""
    infra = views.infrastructure.get(a["account_id"], {})
    network = f"AS{infra['asn']} {infra.get('asn_org') or ''}".strip() if infra.get("asn") is not None else ""
    details = views.reasons.get(a["account_id"])
    reasons = [[d["signal"], d["weight"], d["detail"]] for d in details] if details else a.get("reasons", "")
    return [
        a["account_id"],
        round(a["score"], 4),
        a["verdict"],
        a["campaign_id"] or "",
        infra.get("ip_prefix") or "",
        network,
        reasons,
    ]
