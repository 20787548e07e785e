"""The review loop's effect: what an analyst's labels change in the next scan.

    python bench/labels.py                 # seeds 1,2, scale small
    python bench/labels.py --seeds 1,2,3

For each seed, the simulated week is scanned twice, as a provider would: once at mid-week, and
again at the end of the week over all traffic so far. Between the two, an analyst reviews the
mid-week report: every campaign it lists (confirmed if most of its members are distillers,
dismissed otherwise) and up to `--budget` flagged accounts outside any campaign, highest risk
first (confirmed or dismissed from the ground truth: the analyst is assumed right). Labels are
written as the report exports them, with the score the analyst saw, so a dismissed account whose
score rises by more than the margin is re-flagged ("new evidence").

The end-of-week scan runs with and without those labels on the same store; the table compares
recall, benign flags, hard-negative flags and the verdict changes, all from one run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from distillguard.bench.run import HARD_NEGATIVES, Truth, read_scores, read_truth
from distillguard.labels import Label, write_labels
from distillguard.pipeline import scan
from distillguard.sim import simulate
from distillguard.sim.core import DAY, EPOCH
from ingest import write_results


def split_log(src: Path, dst: Path, until: float) -> int:
    """Copy the log lines that started before `until` (the simulator writes them in time order)."""
    n = 0
    with gzip.open(src, "rb") as fin, gzip.open(dst, "wb") as fout:
        for line in fin:
            if orjson.loads(line)["startTime"] >= until:
                break
            fout.write(line)
            n += 1
    return n


def review(
    scan_dir: Path, truth: dict[str, Truth], budget: int, at: str
) -> tuple[list[Label], dict[str, int]]:
    """The simulated analyst's labels for one report, and what they decided."""
    campaigns = json.loads((scan_dir / "campaigns.json").read_text())
    rows = read_scores(scan_dir / "accounts.csv")
    labels: list[Label] = []
    counts = {"campaign_confirm": 0, "campaign_dismiss": 0, "account_confirm": 0, "account_dismiss": 0}
    in_campaign: set[str] = set()
    for c in campaigns:
        members = [a for a in c["accounts"] if a in truth]
        in_campaign.update(members)
        distilling = sum(truth[a].label for a in members)
        decision = "confirm" if distilling * 2 > len(members) else "dismiss"
        counts[f"campaign_{decision}"] += 1
        labels.append(Label("campaign", str(c["id"]), decision, "bench review", "bench", at))
    flagged = sorted(
        (r for a, r in rows.items() if r["verdict"] != "allow" and a not in in_campaign and a in truth),
        key=lambda r: -float(r["score"]),
    )
    for r in flagged[:budget]:
        decision = "confirm" if truth[r["account_id"]].label else "dismiss"
        counts[f"account_{decision}"] += 1
        labels.append(
            Label("account", r["account_id"], decision, "bench review", "bench", at, float(r["score"]))
        )
    return labels, counts


def outcome(scan_dir: Path, truth: dict[str, Truth]) -> dict[str, Any]:
    rows = read_scores(scan_dir / "accounts.csv")
    flagged = {a for a, r in rows.items() if r["verdict"] != "allow"}
    blocked = {a for a, r in rows.items() if r["verdict"] == "block"}
    distillers = [a for a, t in truth.items() if t.label]
    benign = [a for a, t in truth.items() if not t.label]
    hard = {p: [a for a in benign if truth[a].population == p] for p in HARD_NEGATIVES}
    return {
        "recall": sum(a in flagged for a in distillers) / len(distillers),
        "blocked_recall": sum(a in blocked for a in distillers) / len(distillers),
        "benign_flagged": sum(a in flagged for a in benign),
        "benign_fpr": sum(a in flagged for a in benign) / len(benign),
        "hard_negative_flagged": {p: sum(a in flagged for a in ids) for p, ids in hard.items() if ids},
        "verdicts": {a: r["verdict"] for a, r in rows.items()},
    }


def run_seed(seed: int, scale: str, work: Path, budget: int) -> dict[str, Any]:
    sim_dir = work / f"sim-{seed}"
    info = simulate(scenario="mixed", seed=seed, scale=scale, out=sim_dir)
    truth = read_truth(sim_dir / "truth.csv")
    full = Path(info["paths"]["logs"])
    mid = EPOCH + 3.5 * DAY
    first_half = work / f"first-half-{seed}.jsonl.gz"
    split_log(full, first_half, mid)
    common = {"accounts": sim_dir / "accounts.csv", "intel": sorted((sim_dir / "intel").glob("*.json"))}
    db = work / f"store-{seed}.duckdb"
    scan([first_half], work / f"mid-{seed}", db=db, **common)
    labels, counts = review(work / f"mid-{seed}", truth, budget, datetime.fromtimestamp(mid, UTC).isoformat())
    labels_csv = work / f"labels-{seed}.csv"
    write_labels(labels_csv, labels)
    # The end-of-week scans re-read the whole log into the same store: idempotent on request ids.
    scan([full], work / f"end-{seed}", db=db, **common)
    scan([full], work / f"end-labelled-{seed}", db=db, labels=labels_csv, **common)
    before, after = outcome(work / f"end-{seed}", truth), outcome(work / f"end-labelled-{seed}", truth)
    changed = [a for a, v in after["verdicts"].items() if before["verdicts"].get(a) != v]
    for m in (before, after):
        del m["verdicts"]
    return {
        "seed": seed,
        "labels": counts,
        "verdicts_changed": len(changed),
        "changed_distillers": sum(truth[a].label for a in changed if a in truth),
        "without_labels": before,
        "with_labels": after,
    }


def print_table(results: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="end-of-week scan, without -> with the mid-week labels")
    for col in (
        "seed",
        "labels (campaign c/d, account c/d)",
        "verdicts changed",
        "recall",
        "recall at block",
        "benign flagged",
        "hard negatives flagged",
    ):
        table.add_column(col, justify="right")
    for r in results:
        b, a, n = r["without_labels"], r["with_labels"], r["labels"]
        hard_b, hard_a = sum(b["hard_negative_flagged"].values()), sum(a["hard_negative_flagged"].values())
        table.add_row(
            str(r["seed"]),
            f"{n['campaign_confirm']}/{n['campaign_dismiss']}, {n['account_confirm']}/{n['account_dismiss']}",
            str(r["verdicts_changed"]),
            f"{b['recall']:.3f} -> {a['recall']:.3f}",
            f"{b['blocked_recall']:.3f} -> {a['blocked_recall']:.3f}",
            f"{b['benign_flagged']} -> {a['benign_flagged']}",
            f"{hard_b} -> {hard_a}",
        )
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--scale", default="small")
    ap.add_argument("--budget", type=int, default=50, help="Flagged accounts the analyst reviews per scan.")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "labels.json")
    args = ap.parse_args()
    console = Console(width=max(Console().width, 150))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            console.log(f"seed {seed}: mid-week scan, review, end-of-week scans")
            results.append(run_seed(seed, args.scale, Path(tmp), args.budget))
    print_table(results, console)
    write_results(
        args.out,
        {
            "scale": args.scale,
            "budget": args.budget,
            "results": results,
        },
    )
    console.log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
