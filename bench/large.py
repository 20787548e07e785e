"""Scale benchmark: a sharded scenario (canonical Parquet) scanned end to end on the embedded engine.

    python bench/large.py --scale anthropic            # 16M exchanges, ~24k attacker accounts
    python bench/large.py --exchanges 1500000 --attackers 24000 --shards 8

The scenario is generated once (`sim.large`, parallel shards), then, each in its own process so
peak RSS is its own: a bare Parquet scan of the same files (pyarrow reading every column: the
floor for any engine) and `distillguard scan` with every stage. Then the report is opened in
headless Chromium (load time), and detection is scored on the truth table: recall, benign FPR,
hard negatives, campaign ARI and purity. Prints tables and writes bench/results/large.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ingest import in_subprocess, peak_mib, write_results
from scan import timed_scan

CHROMIUM = Path("/usr/bin/chromium")


def bare_scan(events: Path) -> dict[str, Any]:
    import pyarrow.dataset as ds

    t = time.perf_counter()
    rows = sum(b.num_rows for b in ds.dataset(events).to_batches(batch_size=65_536))
    return {"rows": rows, "seconds": time.perf_counter() - t, "peak_mib": peak_mib()}


def full_scan(events: Path, sim_dir: Path, out: Path) -> dict[str, Any]:
    return timed_scan(sorted(events.glob("part-*.parquet")), sim_dir, out, db=out / "store.duckdb")


def report_load(report: Path) -> dict[str, Any]:
    """Seconds until the report's load event, and console errors, in headless Chromium."""
    if not CHROMIUM.exists():
        return {"skipped": "no /usr/bin/chromium"}
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        t = time.perf_counter()
        page.goto(report.as_uri(), wait_until="load", timeout=300_000)
        seconds = time.perf_counter() - t
        browser.close()
    return {"seconds": seconds, "console_errors": errors[:5], "mib": report.stat().st_size / 2**20}


def quality(sim_dir: Path, scan_dir: Path) -> dict[str, Any]:
    from distillguard.bench.run import read_truth, score_scan

    truth = read_truth(sim_dir / "truth.csv")
    m = score_scan(truth, scan_dir, {p.stem for p in (sim_dir / "intel").glob("*.json")})
    m["distillers"] = sum(t.label for t in truth.values())
    m["accounts"] = len(truth)
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", help="A named sharded scale (anthropic); overrides the three sizes below.")
    ap.add_argument("--exchanges", type=int, default=1_500_000)
    ap.add_argument("--attackers", type=int, default=24_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/distillguard-large"))
    ap.add_argument("--keep", action="store_true", help="Keep the work folder (scenario and scan).")
    ap.add_argument(
        "--reuse", action="store_true", help="Scan the scenario a --keep run left in --work, not a new one."
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "large.json")
    ap.add_argument("--measure", choices=["bare", "scan"], help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sim_dir, scan_dir = args.work / "sim", args.work / "scan"
    if args.measure:
        fn = bare_scan(args.file) if args.measure == "bare" else full_scan(args.file, sim_dir, scan_dir)
        print(json.dumps(fn))
        return

    from distillguard.sim.large import ANTHROPIC, ShardedScale, simulate_sharded

    size = ShardedScale(args.exchanges, args.attackers, args.shards)
    if args.scale == "anthropic":
        size = ANTHROPIC
    console = Console(width=max(Console().width, 120))
    scenario = sim_dir / "scenario.json"
    if args.reuse:
        kept = json.loads(scenario.read_text())
        sim, sim_s = kept["simulated"], kept["sim_seconds"]
        shutil.rmtree(scan_dir, ignore_errors=True)
    else:
        shutil.rmtree(args.work, ignore_errors=True)
        t = time.perf_counter()
        sim = simulate_sharded("mixed", args.seed, sim_dir, size)
        sim_s = time.perf_counter() - t
        sim = {k: v for k, v in sim.items() if k != "paths"}
        scenario.write_text(json.dumps({"simulated": sim, "sim_seconds": sim_s}))
    events = sim_dir / "events"
    mib = sum(p.stat().st_size for p in events.iterdir()) / 2**20
    console.log(f"generated {sim['exchanges']:,} exchanges ({mib:,.0f} MiB Parquet) in {sim_s:,.0f} s")
    bare = in_subprocess("bare", events, __file__, "--work", str(args.work))
    ours = in_subprocess("scan", events, __file__, "--work", str(args.work))
    report = report_load(scan_dir / "report.html")
    q = quality(sim_dir, scan_dir)

    table = Table(title=f"{sim['exchanges']:,} exchanges, {sim['distiller_accounts']:,} attacker accounts")
    for col in ("", "seconds", "exchanges/s", "peak MiB", "x bare scan"):
        table.add_column(col, justify="right")
    for name, m in (("bare Parquet scan", bare), ("distillguard scan", ours)):
        ratio = m["seconds"] / bare["seconds"]
        rate = f"{m['rows'] / m['seconds']:,.0f}"
        table.add_row(name, f"{m['seconds']:.1f}", rate, f"{m['peak_mib']:,.0f}", f"{ratio:.1f}")
    by_stage = ours.get("peak_mib_by_stage", {})
    for stage, seconds in ours["timings_s"].items():
        peak = f"{by_stage[stage]:,.0f}" if by_stage.get(stage) is not None else ""
        table.add_row(f"  {stage}", f"{seconds:.1f}", "", peak, f"{seconds / bare['seconds']:.1f}")
    console.print(table)
    console.print(
        f"report: {report.get('mib', 0):.1f} MiB, load {report.get('seconds', float('nan')):.1f} s, "
        f"console errors {len(report.get('console_errors', []))}"
    )
    hard = ", ".join(f"{k} {v:.3f}" for k, v in q["hard_negative_fpr"].items())
    console.print(
        f"recall {q['recall']:.3f}, benign FPR {q['benign_fpr']:.4f}, hard negatives: {hard}; "
        f"ARI {q['campaigns']['ari']:.3f}, purity {q['campaigns']['purity']:.3f}, "
        f"attribution {q['attribution']['accuracy']:.3f}"
    )
    write_results(
        args.out,
        {
            "size": vars(size),
            "simulated": sim,
            "sim_seconds": sim_s,
            "parquet_mib": mib,
            "bare": bare,
            "scan": ours,
            "report": report,
            "quality": q,
        },
    )
    console.log(f"wrote {args.out}")
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
