"""Campaign linking on simulated traffic: agreement with the true campaigns, and what it costs benign users.

For each seed, the `mixed` scenario is simulated and scanned once (cached under --root); the link
stage (the edges stored in the DuckDB file, then find_campaigns, as the pipeline runs it) is then
re-run alone on the stored file from the raw, pre-lift scores, so edge and clustering changes are
measured in seconds. Usage:

    python bench/link.py [--seeds 1 2 3] [--scale small] [--root /tmp/linkbench]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from distillguard.bench.metrics import campaign_agreement
from distillguard.link import LinkResult, edge_table, find_campaigns
from distillguard.pipeline import scan, score_accounts
from distillguard.policy import Policy
from distillguard.score import RiskModel
from distillguard.sim import simulate
from distillguard.store import ACCOUNT_EDGES, ACCOUNT_FEATURES, REQUEST_SIGNALS, Store

RESULTS = Path(__file__).parent / "results" / "link.json"


def prepare(seed: int, scale: str, root: Path) -> Path:
    """Simulate and scan one seed unless cached; returns the scenario directory (sim/, scan/)."""
    work = root / f"mixed-{seed}-{scale}"
    db = work / "scan" / "distillguard.duckdb"
    if not (work / "scan" / "summary.json").exists():
        sim = work / "sim"
        simulate(scenario="mixed", seed=seed, scale=scale, out=sim)
        scan(
            sorted(sim.glob("logs*.jsonl*")),
            work / "scan",
            accounts=sim / "accounts.csv",
            intel=sorted((sim / "intel").glob("*.json")),
            db=db,
        )
    return work


def raw_scores(store: Store) -> pa.Table:
    """Per-account scores before any campaign lift (the stored account_scores are after it)."""
    features = store.con.table(ACCOUNT_FEATURES).to_pyarrow()
    return score_accounts(features, RiskModel.load(), Policy.load()).select(["account_id", "score"])


def link(db: Path, **params: Any) -> tuple[LinkResult, pa.Table, float]:
    """(link result, raw scores, seconds spent building, storing and clustering edges) on a stored scan,
    as the pipeline does it."""
    store = Store(db)
    try:
        scores = raw_scores(store)
        events, signals, accounts = store.events, store.con.table(REQUEST_SIGNALS), store.accounts
        t = time.perf_counter()
        edges = store.materialize(ACCOUNT_EDGES, edge_table(events, signals, accounts))
        result = find_campaigns(edges, scores, events, signals, accounts, **params)
        return result, scores, time.perf_counter() - t
    finally:
        store.close()


def evaluate(result: LinkResult, scores: pa.Table, sim: Path, review: float = 0.5) -> dict[str, Any]:
    """Campaign agreement over distillers, benign members and lifts, low-and-slow and reseller figures."""
    truth = {r["account_id"]: r for r in csv.DictReader((sim / "truth.csv").open())}
    end_truth = {
        f"{r['account_id']}#{r['end_user_id']}": r["label"]
        for r in csv.DictReader((sim / "end_user_truth.csv").open())
    }
    raw = dict(zip(scores["account_id"].to_pylist(), scores["score"].to_pylist(), strict=True))
    rows = result.assignments.to_pylist()
    whole = {r["account_id"]: r for r in rows if r["end_user_id"] is None}
    member = result.account_campaigns()

    distillers = sorted(a for a, t in truth.items() if t["label"] == "distiller")
    agreement = campaign_agreement(
        [truth[a]["campaign_id"] for a in distillers], [member.get(a) for a in distillers]
    )
    benign = [a for a, t in truth.items() if t["label"] == "benign"]
    benign_members = Counter(truth[a]["population"] for a in benign if a in member)
    lifted_over = [a for a in benign if a in whole and raw.get(a, 0.0) < review <= whole[a]["lifted_score"]]
    slow = [a for a in distillers if truth[a]["population"] == "low_and_slow"]

    def recall(score_of: dict[str, float]) -> float:
        return sum(score_of.get(a, 0.0) >= review for a in slow) / max(len(slow), 1)

    lifted = {a: r["lifted_score"] for a, r in whole.items()}
    end_users = [r for r in rows if r["end_user_id"] is not None]
    reseller = {a for a in distillers if truth[a]["population"] == "reseller"}
    res_nodes = [r for r in end_users if r["account_id"] in reseller]
    res_in = [r for r in res_nodes if r["campaign_id"]]
    res_distilling = [r for r in res_in if end_truth.get(r["node"]) == "distiller"]
    n_distilling = sum(end_truth.get(r["node"]) == "distiller" for r in res_nodes)
    other_end_users = [r for r in end_users if r["account_id"] not in reseller and r["campaign_id"]]
    return {
        "campaigns": len(result.campaigns),
        "ari": agreement["ari"],
        "purity": agreement["purity"],
        "distillers_linked": sum(a in member for a in distillers) / len(distillers),
        "benign_members": sum(benign_members.values()),
        "benign_members_by_population": dict(benign_members),
        "benign_lifted_over_review": len(lifted_over),
        "benign_end_user_nodes": len(other_end_users),
        "low_and_slow_recall_before": recall(raw),
        "low_and_slow_recall_after": recall(lifted),
        "reseller_end_users_in_campaigns": len(res_in),
        "reseller_end_user_purity": len(res_distilling) / len(res_in) if res_in else float("nan"),
        "reseller_distilling_recall": len(res_distilling) / n_distilling if n_distilling else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--scale", default="small")
    parser.add_argument("--root", type=Path, default=Path("/tmp/linkbench"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    runs = []
    for seed in args.seeds:
        work = prepare(seed, args.scale, args.root)
        result, scores, seconds = link(work / "scan" / "distillguard.duckdb")
        runs.append(
            {
                "seed": seed,
                "scale": args.scale,
                "link_seconds": round(seconds, 2),
                **evaluate(result, scores, work / "sim"),
            }
        )

    table = Table(title=f"campaign linking, mixed scenario, scale {args.scale}")
    columns = {
        "seed": "seed", "campaigns": "campaigns", "ari": "ARI", "purity": "purity",
        "benign_members": "benign members", "benign_lifted_over_review": "benign lifted >0.5",
        "benign_end_user_nodes": "benign end users", "low_and_slow_recall_before": "low&slow before",
        "low_and_slow_recall_after": "low&slow after", "reseller_end_user_purity": "reseller EU purity",
        "reseller_distilling_recall": "reseller EU recall", "link_seconds": "time (s)",
    }  # fmt: skip
    for label in columns.values():
        table.add_column(label, justify="right")
    for run in runs:
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in (run[k] for k in columns)))
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"scenario": "mixed", "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
