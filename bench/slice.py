"""A slice of accounts scanned alone, against the full run restricted to that slice.

    python bench/slice.py [--scale small] [--seed 7] [--parts 4]

Scale-out partitions the work by account hash (docs/scale.md). This measures what a partition
computed alone would get wrong. The simulator's log is scanned whole. Then its events for the
accounts whose mmh3 hash falls in part 0 of `--parts` are written as canonical Parquet and scanned
alone. Both scans get the same accounts, intel and model. Compared over the slice's accounts:
- every account feature (NaN equal to NaN, floats to 1e-9);
- the raw risk score from those features;
- the verdict and campaign id in accounts.csv.

Features built on cross-account context (how many accounts share a template or an IP prefix, when
a model was first seen) are expected to differ unless that context is shared. This script says by
how much, and what it changes downstream.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path
from typing import Any

import mmh3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from distillguard.features import FEATURES
from distillguard.io import ReadOptions, RejectSink, read_events
from distillguard.pipeline import feature_matrix, scan
from distillguard.score import RiskModel
from distillguard.sim import simulate
from distillguard.store import ACCOUNT_FEATURES, Store

RESULTS = Path(__file__).parent / "results" / "slice.json"


def write_slice(log: Path, out: Path, parts: int) -> int:
    """The events of log's accounts in hash part 0, as canonical Parquet; returns the row count."""
    batches = []
    for batch in read_events(log, RejectSink(), ReadOptions()):
        ids = batch.column("account_id").to_pylist()
        keep = pa.array([mmh3.hash(a, 0, signed=False) % parts == 0 for a in ids])
        batches.append(batch.filter(keep))
    table = pa.Table.from_batches(batches)
    pq.write_table(table, out)
    return table.num_rows


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


def compare(full_dir: Path, slice_dir: Path) -> dict[str, Any]:
    full, part = _features(full_dir / "distillguard.duckdb"), _features(slice_dir / "distillguard.duckdb")
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

    fa, pa_ = rows(full_dir), rows(slice_dir)
    return {
        "accounts": len(ids),
        "features_differing": {k: v for k, v in differing.items() if v},
        "features_equal": sum(v == 0 for v in differing.values()),
        "features": len(FEATURES),
        "raw_score_differing": int((raw > 1e-9).sum()),
        "raw_score_max_diff": float(raw.max()) if len(raw) else 0.0,
        "verdict_differing": sum(fa[a]["verdict"] != pa_[a]["verdict"] for a in ids),
        "in_campaign_full": sum(bool(fa[a]["campaign_id"]) for a in ids),
        "in_campaign_slice": sum(bool(pa_[a]["campaign_id"]) for a in ids),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="small")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--parts", type=int, default=4)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sim = work / "sim"
        simulate(scenario="mixed", seed=args.seed, scale=args.scale, out=sim)
        log = next(iter(sorted(sim.glob("logs*.jsonl*"))))
        common: dict[str, Any] = {
            "accounts": sim / "accounts.csv",
            "intel": sorted((sim / "intel").glob("*.json")),
        }
        scan([log], work / "full", **common)
        rows = write_slice(log, work / "slice.parquet", args.parts)
        scan([work / "slice.parquet"], work / "slice", **common)
        result = {"scale": args.scale, "seed": args.seed, "parts": args.parts, "slice_events": rows}
        result |= compare(work / "full", work / "slice")

    table = Table(
        title=f"one account-hash slice (1/{args.parts}) scanned alone vs the full run, {args.scale}"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("slice accounts / events", f"{result['accounts']:,} / {rows:,}")
    table.add_row("features equal on every account", f"{result['features_equal']} of {result['features']}")
    for name, n in result["features_differing"].items():
        table.add_row(f"  differs: {name}", f"{n} accounts")
    table.add_row(
        "raw risk score differing",
        f"{result['raw_score_differing']} (max {result['raw_score_max_diff']:.3f})",
    )
    table.add_row("verdict differing", str(result["verdict_differing"]))
    table.add_row(
        "in a campaign: full run / slice alone",
        f"{result['in_campaign_full']} / {result['in_campaign_slice']}",
    )
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
