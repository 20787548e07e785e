"""What the report shows, gathered from a scan's output files and its store.

The output files (accounts.csv, campaigns.json, summary.json) are what the analyst acts on; the
store adds what they do not carry: time series, each account's infrastructure, example prompts.
Every query aggregates in the engine, so the page's inputs stay small at millions of events.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
from ibis.expr.types import Table

from distillguard.link.edges import event_nodes, strongest_first
from distillguard.store import ACCOUNT_EDGES, ACCOUNT_SCORES, REQUEST_SIGNALS, EventStore, most_frequent

MEMBERS = "_report_campaign_members"
MAX_EDGES_READ = 200_000  # strongest edges read per campaign
UNKNOWN = "unknown"
HOURLY_UP_TO = timedelta(days=3)  # longer scans are bucketed by day
PROMPT_CHARS = 600  # characters of an example prompt shown
DETAIL_CHARS = 200  # characters of a reason's detail shown


@dataclass
class Outputs:
    """The scan's output files, parsed."""

    summary: dict[str, Any]
    campaigns: list[dict[str, Any]]
    accounts: list[dict[str, Any]]


def read_outputs(out_dir: Path) -> Outputs:
    summary = json.loads((out_dir / "summary.json").read_text())
    campaigns = json.loads((out_dir / "campaigns.json").read_text())
    with (out_dir / "accounts.csv").open(newline="", encoding="utf-8") as fh:
        accounts = [
            {**row, "score": float(row["score"] or 0), "campaign_id": row.get("campaign_id") or None}
            for row in csv.DictReader(fh)
        ]
    return Outputs(summary, campaigns, accounts)


@dataclass
class StoreViews:
    """Aggregates from the store; each is small whatever the number of events."""

    bucket: str  # "hour" or "day"
    capability_mix: list[dict[str, Any]] = field(default_factory=list)  # bucket, capability, requests
    campaign_timelines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    infrastructure: dict[str, dict[str, Any]] = field(default_factory=dict)  # per graph node, dominant
    templates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # per campaign
    reasons: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # per account
    edges: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # per campaign, from the store


def _membership(store: EventStore, campaigns: Sequence[Mapping[str, Any]]) -> Table:
    """(node, campaign_id) as a temporary table; nodes are account ids or account#end_user for routers.

    A table, not a memtable: DuckDB plans a memtable scanned twice in one query very slowly.
    """
    pairs = [(str(acc), str(c["id"])) for c in campaigns for acc in c.get("accounts", ())]
    table = pa.table(
        {"node": [a for a, _ in pairs], "campaign_id": [c for _, c in pairs]},
        schema=pa.schema([("node", pa.string()), ("campaign_id", pa.string())]),
    )
    return store.write_table(MEMBERS, table, temp=True)


def _rows(expr: Table) -> list[dict[str, Any]]:
    return list(expr.to_pyarrow().to_pylist())


def read_store(
    store: EventStore, campaigns: Sequence[Mapping[str, Any]], templates_per_campaign: int, max_examples: int
) -> StoreViews:
    con = store.con
    tables = set(con.list_tables())
    events = store.events
    span = (
        events.aggregate(lo=events.start_time.min(), hi=events.start_time.max()).to_pyarrow().to_pylist()[0]
    )
    hourly = span["lo"] is None or span["hi"] - span["lo"] <= HOURLY_UP_TO
    views = StoreViews(bucket="hour" if hourly else "day")
    unit = "h" if hourly else "D"
    if REQUEST_SIGNALS not in tables:
        return views

    signals = store.table(REQUEST_SIGNALS)
    joined = (
        event_nodes(events)
        .select("request_id", "node", "account_id", "start_time", "user_text")
        .join(
            signals.select(
                "request_id", "capability", "template_id", "ip_prefix", "asn", "asn_org", "ip_kind"
            ),
            "request_id",
        )
    )
    joined = joined.mutate(
        bucket=joined.start_time.truncate(unit), capability=joined.capability.fill_null(UNKNOWN)
    )
    views.capability_mix = _rows(
        joined.group_by(["bucket", "capability"]).aggregate(requests=joined.count()).order_by("bucket")
    )

    members = _membership(store, campaigns)
    in_campaign = joined.join(members, "node")
    for row in _rows(
        in_campaign.group_by(["campaign_id", "bucket", "capability"])
        .aggregate(requests=in_campaign.count())
        .order_by("bucket")
    ):
        views.campaign_timelines.setdefault(row.pop("campaign_id"), []).append(row)

    views.infrastructure = _dominant_infrastructure(joined)
    views.templates = _templates(in_campaign, templates_per_campaign, max_examples)
    if ACCOUNT_SCORES in tables:
        views.reasons = _reasons(store.table(ACCOUNT_SCORES))
    if ACCOUNT_EDGES in tables:
        views.edges = _edges(store.table(ACCOUNT_EDGES), members)
    return views


def _edges(edges: Table, members: Table) -> dict[str, list[dict[str, Any]]]:
    """Edges whose two ends are in the same campaign, the strongest first."""
    inner = (
        edges.select("src", "dst", "kind", "weight")
        .join(members.rename(src="node"), "src")
        .join(members.rename(dst="node"), ["dst", "campaign_id"])
    )
    rank = ibis.row_number().over(group_by=inner.campaign_id, order_by=strongest_first(inner))
    out: dict[str, list[dict[str, Any]]] = {}
    for row in _rows(inner.mutate(rank=rank).filter(lambda t: t["rank"] < MAX_EDGES_READ).drop("rank")):
        out.setdefault(row.pop("campaign_id"), []).append(row)
    return out


def _dominant_infrastructure(joined: Table) -> dict[str, dict[str, Any]]:
    """Each graph node's most used network: where it is drawn when a campaign graph is aggregated."""
    per = joined.group_by(["node", "ip_prefix", "asn", "asn_org", "ip_kind"]).aggregate(
        requests=joined.count()
    )
    rank = ibis.row_number().over(group_by=per.node, order_by=[ibis.desc(per.requests), per.ip_prefix])
    top = per.mutate(rank=rank).filter(lambda t: t["rank"] == 0).drop("rank", "requests")
    return {row.pop("node"): row for row in _rows(top)}


def _templates(in_campaign: Table, per_campaign: int, max_examples: int) -> dict[str, list[dict[str, Any]]]:
    """The most used templates per campaign, with a few distinct example prompts each."""
    with_template = in_campaign.filter(in_campaign.template_id.notnull())
    keys = ["campaign_id", "template_id"]
    counts = (
        with_template.group_by(keys)
        .aggregate(requests=with_template.count(), accounts=with_template.account_id.nunique())
        .left_join(most_frequent(with_template, keys, "capability"), keys)
        .select(*keys, "requests", "accounts", "capability")
    )
    rank = ibis.row_number().over(
        group_by=counts.campaign_id, order_by=[ibis.desc(counts.requests), counts.template_id]
    )
    top = counts.mutate(rank=rank).filter(lambda t: t["rank"] < per_campaign)
    prompts = (
        with_template.filter(with_template.user_text.notnull())
        .select("campaign_id", "template_id", "user_text")
        .distinct()
    )
    prompt_rank = ibis.row_number().over(
        group_by=[prompts.campaign_id, prompts.template_id], order_by=prompts.user_text
    )
    examples = prompts.mutate(rank=prompt_rank).filter(lambda t: t["rank"] < max_examples)
    examples = examples.join(top.select("campaign_id", "template_id"), ["campaign_id", "template_id"])
    texts: dict[tuple[str, str], list[str]] = {}
    for row in _rows(examples.order_by(["campaign_id", "template_id", "rank"])):
        texts.setdefault((row["campaign_id"], row["template_id"]), []).append(row["user_text"][:PROMPT_CHARS])
    out: dict[str, list[dict[str, Any]]] = {}
    for row in _rows(top.order_by(["campaign_id", "rank"]).drop("rank")):
        row["examples"] = texts.get((row["campaign_id"], row["template_id"]), [])
        out.setdefault(row.pop("campaign_id"), []).append(row)
    return out


def _reasons(scores: Table) -> dict[str, list[dict[str, Any]]]:
    """Each flagged account's reasons: signal, weight and (trimmed) detail; evidence stays in the store."""
    flagged = scores.filter(scores.reasons_json.notnull() & (scores.reasons_json != "[]"))
    out: dict[str, list[dict[str, Any]]] = {}
    for row in _rows(flagged.select("account_id", "reasons_json")):
        out[row["account_id"]] = [
            {
                "signal": r.get("signal"),
                "weight": r.get("weight"),
                "detail": str(r.get("detail", ""))[:DETAIL_CHARS],
            }
            for r in json.loads(row["reasons_json"])
        ]
    return out
