"""`distillguard bench`: simulate labelled scenarios, scan them, score baselines, one table.

Every number comes from one run over the same files, so the comparison is fair on a noisy machine.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from distillguard.bench.baselines import BASELINES
from distillguard.bench.metrics import campaign_agreement, flagged_rate_by_group, ranking

HARD_NEGATIVES = ("eval_runner", "enterprise_app", "university_nat", "router")


@dataclass(frozen=True)
class Truth:
    account_id: str
    label: int
    campaign_id: str
    actor: str
    capability: str
    population: str


def read_truth(path: Path) -> dict[str, Truth]:
    with path.open(newline="") as fh:
        return {
            r["account_id"]: Truth(
                r["account_id"],
                int(r["label"] == "distiller"),
                r.get("campaign_id") or "",
                r.get("actor") or "",
                r.get("capability") or "",
                r.get("population") or "",
            )
            for r in csv.DictReader(fh)
        }


def read_scores(path: Path) -> dict[str, dict[str, Any]]:
    with path.open(newline="") as fh:
        return {r["account_id"]: r for r in csv.DictReader(fh)}


def evaluate(truth: dict[str, Truth], scores: dict[str, float], flagged: dict[str, bool]) -> dict[str, Any]:
    """Ranking metrics plus per-population flag rates for one detector on one scenario."""
    ids = sorted(truth)
    y = np.array([truth[a].label for a in ids])
    s = np.array([scores.get(a, 0.0) for a in ids])
    f = np.array([flagged.get(a, False) for a in ids])
    pops = [truth[a].population for a in ids]
    rates = flagged_rate_by_group(f, pops)
    return {
        **ranking(y, s),
        "benign_fpr": float(f[y == 0].mean()),
        "recall": float(f[y == 1].mean()),
        "hard_negative_fpr": {p: rates[p] for p in HARD_NEGATIVES if p in rates},
        "recall_by_strategy": {
            p: r for p, r in rates.items() if p in {truth[a].population for a in ids if truth[a].label}
        },
    }


def _baseline_flags(truth: dict[str, Truth], scores: dict[str, float]) -> dict[str, bool]:
    """A baseline's operating point: the threshold that flags 1% of benign accounts."""
    benign = np.array([scores.get(a, 0.0) for a, t in truth.items() if not t.label])
    cut = np.quantile(benign, 0.99) if len(benign) else np.inf
    return {a: scores.get(a, 0.0) > cut for a in truth}


def run_scenario(scenario: str, seed: int, scale: str, work: Path, metadata_only: bool) -> dict[str, Any]:
    from distillguard.pipeline import scan
    from distillguard.sim import simulate
    from distillguard.store import Store

    sim_dir = work / f"{scenario}-{seed}-{scale}{'-meta' if metadata_only else ''}"
    t = time.perf_counter()
    sim = simulate(
        scenario=scenario, seed=seed, scale=scale, out=sim_dir / "sim", metadata_only=metadata_only
    )
    sim_s = time.perf_counter() - t
    truth = read_truth(sim_dir / "sim" / "truth.csv")
    intel = sorted((sim_dir / "sim" / "intel").glob("*.json"))
    t = time.perf_counter()
    result = scan(
        [Path(p) for p in sim["logs"]] if "logs" in sim else sorted((sim_dir / "sim").glob("logs*.jsonl*")),
        sim_dir / "scan",
        accounts=sim_dir / "sim" / "accounts.csv",
        intel=intel,
        db=sim_dir / "scan.duckdb",
    )
    scan_s = time.perf_counter() - t
    rows = read_scores(sim_dir / "scan" / "accounts.csv")
    ours = evaluate(
        truth,
        {a: float(r["score"]) for a, r in rows.items()},
        {a: r["verdict"] != "allow" for a, r in rows.items()},
    )
    distillers = [a for a, t in truth.items() if t.label]
    ours["campaigns"] = campaign_agreement(
        [truth[a].campaign_id for a in distillers],
        [rows.get(a, {}).get("campaign_id") or None for a in distillers],
    )
    ours["attribution_accuracy"] = _attribution_accuracy(truth, sim_dir / "scan" / "campaigns.json")
    out: dict[str, Any] = {
        "scenario": scenario,
        "seed": seed,
        "scale": scale,
        "metadata_only": metadata_only,
        "exchanges": result.exchanges,
        "accounts": len(truth),
        "distillers": len(distillers),
        "sim_seconds": round(sim_s, 2),
        "scan_seconds": round(scan_s, 2),
        "detectors": {"distillguard": ours},
    }
    store = Store(sim_dir / "scan.duckdb")
    events = store.events.select("account_id", "start_time", "user_text").to_pyarrow()
    store.close()
    for name, fn in BASELINES.items():
        b = fn(events)
        out["detectors"][name] = evaluate(truth, b, _baseline_flags(truth, b))
    return out


def _attribution_accuracy(truth: dict[str, Truth], campaigns_path: Path) -> float:
    """Share of found campaigns attributed to their true majority actor; "unknown" counts as wrong."""
    campaigns = json.loads(campaigns_path.read_text()) if campaigns_path.exists() else []
    hits = total = 0
    for c in campaigns:
        actors = [truth[a].actor for a in c.get("accounts", []) if a in truth and truth[a].label]
        if not actors:
            continue
        major = max(set(actors), key=actors.count)
        total += 1
        hits += int((c.get("attribution") or {}).get("actor") == major)
    return hits / total if total else float("nan")


def _fmt(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def print_table(results: Sequence[dict[str, Any]], console: Console) -> None:
    table = Table(title="distillguard bench (mean over runs)")
    cols = [
        "detector",
        "content",
        "AUROC",
        "AP",
        "R@1%FPR",
        "R@0.1%FPR",
        "benign FPR",
        "recall",
        "worst hard-neg FPR",
    ]
    for c in cols:
        table.add_column(c, justify="right")
    keys: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for r in results:
        for name, m in r["detectors"].items():
            keys.setdefault((name, r["metadata_only"]), []).append(m)
    for (name, meta), ms in keys.items():
        mean = {
            k: float(np.nanmean([m[k] for m in ms]))
            for k in ("auroc", "ap", "recall_at_1pct_fpr", "recall_at_0.1pct_fpr", "benign_fpr", "recall")
        }
        worst = max((v for m in ms for v in m["hard_negative_fpr"].values()), default=float("nan"))
        table.add_row(
            name,
            "metadata" if meta else "full",
            _fmt(mean["auroc"]),
            _fmt(mean["ap"]),
            _fmt(mean["recall_at_1pct_fpr"]),
            _fmt(mean["recall_at_0.1pct_fpr"]),
            _fmt(mean["benign_fpr"]),
            _fmt(mean["recall"]),
            _fmt(worst),
        )
    console.print(table)


def run_bench(
    scenarios: Sequence[str], seeds: Sequence[int], scale: str, work: Path, metadata_only: bool = True
) -> list[dict[str, Any]]:
    console = Console()
    results = []
    for scenario in scenarios:
        for seed in seeds:
            for meta in (False, True) if metadata_only else (False,):
                console.log(
                    f"{scenario} seed={seed} scale={scale} {'metadata-only' if meta else 'full content'}"
                )
                results.append(run_scenario(scenario, seed, scale, work, meta))
    print_table(results, console)
    (work / "bench.json").write_text(json.dumps(results, indent=2))
    console.log(f"wrote {work / 'bench.json'}")
    return results
