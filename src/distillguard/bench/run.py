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

from distillguard.attribute.match import UNKNOWN_ACTOR
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


def run_scenario(
    scenario: str, seed: int, scale: str, work: Path, metadata_only: bool, replay: bool = False
) -> dict[str, Any]:
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
    ours = score_scan(truth, sim_dir / "scan", {p.stem for p in intel})
    distillers = [a for a, t in truth.items() if t.label]
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
    if replay:
        ours["first_flag"] = _replay(store, truth, sim_dir / "sim" / "accounts.csv")
    store.close()
    for name, fn in BASELINES.items():
        b = fn(events)
        out["detectors"][name] = evaluate(truth, b, _baseline_flags(truth, b))
    return out


def score_scan(truth: dict[str, Truth], scan_dir: Path, intel_actors: set[str]) -> dict[str, Any]:
    """distillguard's own quality on one scan's outputs: `evaluate` at its verdicts, campaign
    agreement over the distillers, and attribution."""
    rows = read_scores(scan_dir / "accounts.csv")
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
    ours["attribution"] = attribution_scores(truth, scan_dir / "campaigns.json", intel_actors)
    ours["attribution_accuracy"] = ours["attribution"]["accuracy"]
    return ours


def _replay(store: Any, truth: dict[str, Truth], accounts_csv: Path) -> dict[str, Any]:
    """The stored log in time order through the online detector, with the scan's request signals."""
    from distillguard.bench.replay import read_end_user_campaigns, replay_campaigns, signal_lookup
    from distillguard.io import RejectSink
    from distillguard.io.accounts import read_accounts
    from distillguard.score import RiskModel
    from distillguard.store import REQUEST_SIGNALS

    events = store.events.order_by(["start_time", "request_id"]).to_pyarrow().to_pylist()
    signals = store.con.table(REQUEST_SIGNALS).to_pyarrow().to_pylist()
    accounts = {r["account_id"]: r for r in read_accounts(accounts_csv, RejectSink()).to_pylist()}
    campaign_of = {a: t.campaign_id for a, t in truth.items() if t.campaign_id}
    end_users = read_end_user_campaigns(accounts_csv.parent / "end_user_truth.csv")
    benign = {a: t.population for a, t in truth.items() if not t.label}
    return replay_campaigns(
        events,
        campaign_of,
        RiskModel.load(),
        accounts,
        signal_lookup(signals),
        end_users=end_users,
        benign=benign,
    )


def attribution_scores(
    truth: dict[str, Truth], campaigns_path: Path, intel_actors: set[str]
) -> dict[str, Any]:
    """How found campaigns were attributed, against the majority actor of their distiller members.

    `accuracy`: share of campaigns whose actor has intel that name that actor ("unknown" is wrong);
    `unknown_when_no_intel`: share of campaigns of actors without intel left to "unknown actor";
    `benign_only_evidence`: attributions resting only on indicators that also match benign traffic
    (the decoy); the bar is none.
    """
    campaigns = json.loads(campaigns_path.read_text()) if campaigns_path.exists() else []
    hits = total = unknown = no_intel = benign_only = 0
    for c in campaigns:
        actors = [
            truth[a].actor
            for a in (m.split("#", 1)[0] for m in c.get("accounts", []))  # reseller end users: acct#user
            if a in truth and truth[a].label
        ]
        if not actors:
            continue
        major = max(set(actors), key=actors.count)
        attribution = c.get("attribution") or {}
        named = attribution.get("actor")
        evidence = attribution.get("evidence") or []
        attributed = named not in (None, UNKNOWN_ACTOR)
        if attributed and evidence and all(e.get("also_matches_benign") for e in evidence):
            benign_only += 1
        if major in intel_actors:
            total += 1
            hits += int(named == major)
        else:
            no_intel += 1
            unknown += int(not attributed)
    return {
        "accuracy": hits / total if total else float("nan"),
        "campaigns_with_intel": total,
        "unknown_when_no_intel": unknown / no_intel if no_intel else float("nan"),
        "campaigns_without_intel": no_intel,
        "benign_only_evidence": benign_only,
    }


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


def _mean(values: Sequence[float | None]) -> float:
    vals = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def print_details(results: Sequence[dict[str, Any]], console: Console) -> None:
    """Per strategy, per hard-negative population, and per run (campaigns, attribution, first flag)."""
    full = [r for r in results if not r["metadata_only"]]
    meta = [r for r in results if r["metadata_only"]]
    columns = [(n, False) for n in full[0]["detectors"]] if full else []
    columns += [("distillguard", True)] if meta else []

    def cell(runs: Sequence[dict[str, Any]], name: str, key: str, group: str) -> str:
        return _fmt(_mean([r["detectors"][name][key].get(group) for r in runs]))

    for title, key, groups in (
        (
            "recall per campaign strategy (verdict above allow; baselines at 1% benign FPR)",
            "recall_by_strategy",
            sorted({g for r in results for g in r["detectors"]["distillguard"]["recall_by_strategy"]}),
        ),
        ("hard negatives flagged (share of the population)", "hard_negative_fpr", HARD_NEGATIVES),
    ):
        table = Table(title=title)
        table.add_column("population")
        for name, is_meta in columns:
            table.add_column(f"{name}{' (metadata)' if is_meta else ''}", justify="right")
        for g in groups:
            table.add_row(g, *(cell(meta if m else full, n, key, g) for n, m in columns))
        console.print(table)

    runs = Table(title="distillguard per run: campaigns, attribution, time to first flag")
    for col in (
        "seed",
        "content",
        "ARI",
        "purity",
        "attribution acc. (intel)",
        "unknown (no intel)",
        "benign-only attributions",
        "worst share before first flag",
        "benign flagged online",
        "scan s",
    ):
        runs.add_column(col, justify="right")
    for r in results:
        d = r["detectors"]["distillguard"]
        first = (d.get("first_flag") or {}).get("worst_share_before_flag")
        runs.add_row(
            str(r["seed"]),
            "metadata" if r["metadata_only"] else "full",
            _fmt(d["campaigns"]["ari"]),
            _fmt(d["campaigns"]["purity"]),
            _fmt(d["attribution"]["accuracy"]),
            _fmt(d["attribution"]["unknown_when_no_intel"]),
            str(d["attribution"]["benign_only_evidence"]),
            "-" if "first_flag" not in d else "never" if first is None else f"{first:.1%}",
            _benign_online(d.get("first_flag")),
            f"{r['scan_seconds']:.1f}",
        )
    console.print(runs)


def _benign_online(first_flag: dict[str, Any] | None) -> str:
    """'flagged / accounts' of the replay's benign accounts, '-' without a replay."""
    if not first_flag or "benign" not in first_flag:
        return "-"
    b = first_flag["benign"]
    return f"{b['flagged']} / {b['accounts']}"


def run_bench(
    scenarios: Sequence[str],
    seeds: Sequence[int],
    scale: str,
    work: Path,
    metadata_only: bool = True,
    replay: bool = True,
) -> list[dict[str, Any]]:
    console = Console(width=max(Console().width, 150))
    results = []
    for scenario in scenarios:
        for seed in seeds:
            for meta in (False, True) if metadata_only else (False,):
                console.log(
                    f"{scenario} seed={seed} scale={scale} {'metadata-only' if meta else 'full content'}"
                )
                # The online replay runs once per seed, on full content (it costs about a scan).
                results.append(run_scenario(scenario, seed, scale, work, meta, replay and not meta))
    print_table(results, console)
    print_details(results, console)
    (work / "bench.json").write_text(json.dumps(results, indent=2))
    console.log(f"wrote {work / 'bench.json'}")
    return results
