"""Account-hash partitions scanned alone, and with the run's merged cross-account context.

    python bench/slice.py [--scale small] [--seed 7] [--parts 4]

Scale-out partitions the work by account hash (docs/scale.md). The simulator's log is scanned
whole. Its events are then cut into `--parts` partitions by the mmh3 hash of the account id, written
as canonical Parquet, and each partition is scanned alone (pass 1). Their cross-account contexts
are merged, and partition 0 is scanned again with the merged context (pass 2). Every scan gets the
same accounts, intel and model. Partition 0, alone and with the context, is compared with the full
run restricted to its accounts:
- every account feature (NaN equal to NaN, floats to 1e-9);
- the raw risk score from those features;
- the verdict, and whether the account is in a campaign, in accounts.csv.

Alone, the features built on cross-account context differ (how many accounts share a template or
an IP prefix, when a model was first seen); with the merged context they should not. Campaigns
may differ either way, since linking sees only the partition's accounts. So, last, every partition
is scanned with the merged context and `link_partitions` links them together: every account's
score and verdict, and every campaign (its members and its actor), are compared with the full run.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from distillguard.context import CrossAccountContext, write_partitions
from distillguard.features import FEATURES
from distillguard.pipeline import cross_account_context, feature_matrix, link_partitions, scan
from distillguard.score import RiskModel
from distillguard.sim import simulate
from distillguard.store import ACCOUNT_FEATURES, Store

RESULTS = Path(__file__).parent / "results" / "slice.json"


def _features(db: Path) -> pa.Table:
    store = Store(db)
    try:
        return store.con.table(ACCOUNT_FEATURES).to_pyarrow()
    finally:
        store.close()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return bool((np.isnan(a) and np.isnan(b)) or np.isclose(a, b, rtol=1e-9, atol=1e-12))
    return bool(a == b)


def compare(full_dir: Path, part_dir: Path) -> dict[str, Any]:
    """Features, raw scores, verdicts and campaign membership of the partition's accounts."""
    full, part = _features(full_dir / "distillguard.duckdb"), _features(part_dir / "distillguard.duckdb")
    ids = part.column("account_id").to_pylist()
    where = {a: i for i, a in enumerate(full.column("account_id").to_pylist())}
    full = full.take(pa.array([where[a] for a in ids]))
    differing = {
        name: sum(
            not _same(x, y) for x, y in zip(full[name].to_pylist(), part[name].to_pylist(), strict=True)
        )
        for name in FEATURES
    }
    model = RiskModel.load()
    raw = np.abs(model.predict_proba(feature_matrix(full)) - model.predict_proba(feature_matrix(part)))

    def rows(d: Path) -> dict[str, dict[str, str]]:
        return {r["account_id"]: r for r in csv.DictReader((d / "accounts.csv").open())}

    in_full, in_part = rows(full_dir), rows(part_dir)
    return {
        "accounts": len(ids),
        "features_differing": {k: v for k, v in differing.items() if v},
        "features_equal": sum(v == 0 for v in differing.values()),
        "features": len(FEATURES),
        "raw_score_differing": int((raw > 1e-9).sum()),
        "raw_score_max_diff": float(raw.max()) if len(raw) else 0.0,
        "verdict_differing": sum(in_full[a]["verdict"] != in_part[a]["verdict"] for a in ids),
        "in_campaign_full": sum(bool(in_full[a]["campaign_id"]) for a in ids),
        "in_campaign_part": sum(bool(in_part[a]["campaign_id"]) for a in ids),
    }


def run(scale: str, seed: int, parts: int, work: Path) -> dict[str, Any]:
    sim = work / "sim"
    simulate(scenario="mixed", seed=seed, scale=scale, out=sim)
    log = next(iter(sorted(sim.glob("logs*.jsonl*"))))
    common: dict[str, Any] = {
        "accounts": sim / "accounts.csv",
        "intel": sorted((sim / "intel").glob("*.json")),
    }
    scan([log], work / "full", **common)
    contexts = []
    for i, path in enumerate(write_partitions(log, work, parts)):
        scan([path], work / f"part-{i}", **common)
        store = Store(work / f"part-{i}" / "distillguard.duckdb")
        contexts.append(cross_account_context(store))
        store.close()
    merged = CrossAccountContext.merge(contexts)
    for i in range(parts):
        scan([work / f"part-{i}.parquet"], work / f"part-{i}-context", context=merged, **common)
    link_partitions(
        [work / f"part-{i}-context" / "distillguard.duckdb" for i in range(parts)],
        work / "linked",
        intel=common["intel"],
    )
    return {
        "scale": scale,
        "seed": seed,
        "parts": parts,
        "alone": compare(work / "full", work / "part-0"),
        "with_context": compare(work / "full", work / "part-0-context"),
        "linked": compare_linked(work / "full", work / "linked"),
    }


def _campaigns(out: Path) -> dict[frozenset[str], str]:
    """Each campaign's member set, with its attributed actor ('' when none)."""
    found = json.loads((out / "campaigns.json").read_text())
    return {frozenset(c["accounts"]): (c.get("attribution") or {}).get("actor", "") for c in found}


def compare_linked(full_dir: Path, linked_dir: Path) -> dict[str, Any]:
    """Every account's score and verdict, and every campaign (members and actor), of the partitioned
    run linked over all partitions against the full run."""
    full = {r["account_id"]: r for r in csv.DictReader((full_dir / "accounts.csv").open())}
    linked = {r["account_id"]: r for r in csv.DictReader((linked_dir / "accounts.csv").open())}
    both = sorted(set(full) & set(linked))
    a, b = _campaigns(full_dir), _campaigns(linked_dir)
    return {
        "accounts_full": len(full),
        "accounts_linked": len(linked),
        "score_differing": sum(abs(float(full[x]["score"]) - float(linked[x]["score"])) > 1e-9 for x in both),
        "verdict_differing": sum(full[x]["verdict"] != linked[x]["verdict"] for x in both),
        "campaigns_full": len(a),
        "campaigns_linked": len(b),
        "campaigns_identical": len(set(a) & set(b)),
        "actors_differing": sum(a[m] != b[m] for m in set(a) & set(b)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="small")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--parts", type=int, default=4)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.scale, args.seed, args.parts, Path(tmp))

    a, c = result["alone"], result["with_context"]
    table = Table(
        title=f"account-hash partition 0 of {args.parts} vs the full run ({args.scale}, seed {args.seed})"
    )
    for name in ("measure", "alone", "with merged context"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    table.add_row("accounts", f"{a['accounts']:,}", f"{c['accounts']:,}")
    table.add_row(
        "features equal on every account", *(f"{r['features_equal']} of {r['features']}" for r in (a, c))
    )
    for name in sorted(set(a["features_differing"]) | set(c["features_differing"])):
        table.add_row(f"  differs: {name}", *(str(r["features_differing"].get(name, 0)) for r in (a, c)))
    table.add_row(
        "raw risk score differing (max)",
        *(f"{r['raw_score_differing']} ({r['raw_score_max_diff']:.3f})" for r in (a, c)),
    )
    table.add_row("verdict differing", str(a["verdict_differing"]), str(c["verdict_differing"]))
    table.add_row(
        f"in a campaign (full run: {a['in_campaign_full']})",
        str(a["in_campaign_part"]),
        str(c["in_campaign_part"]),
    )
    Console().print(table)
    linked = result["linked"]
    table = Table(title=f"all {args.parts} partitions, merged context, linked together, vs the full run")
    for name in ("measure", "value"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    for name, value in linked.items():
        table.add_row(name.replace("_", " "), str(value))
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
