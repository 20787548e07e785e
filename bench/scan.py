"""Scan throughput on simulated traffic, next to a bare orjson parse of the same log.

    python bench/scan.py                   # scale small (~50k exchanges)
    python bench/scan.py --scale medium    # ~1M exchanges

The simulator's gzip log is decompressed once; the bare parse and `distillguard scan` (every
stage, with the simulated accounts and intel) then read that same file, each in its own process
so peak RSS is its own. The figure is scan time / bare parse time, measured in one run, since
absolute rates vary with the machine and its load. Per-stage seconds come from summary.json.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ingest import in_subprocess, peak_mib, run_bare, write_results


def _rss_kib(pid: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))


def _descendants(pid: str) -> list[str]:
    out = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):  # ended since the listing
            for child in children.read_text().split():
                out += [child, *_descendants(child)]
    return out


def tree_rss_mib(pid: str = "self") -> float:
    """Resident memory of a process and every process under it (the scan's signal workers), in MiB."""
    total = 0
    for each in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError, StopIteration):  # ended between the listing and the read
            total += _rss_kib(each)
    return total / 1024


class RssSampler:
    """Resident memory of this process and its children (summed) every `interval_s` seconds, on a
    thread of its own."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []  # (time.time(), MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pid = str(os.getpid())
        while not self._stop.is_set():
            self.samples.append((time.time(), tree_rss_mib(pid)))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peaks(self, start: float, seconds: dict[str, float]) -> dict[str, float | None]:
        """Peak MiB within each of consecutive stages lasting `seconds[name]`, from `start` (None for a
        stage shorter than one sampling interval)."""
        out: dict[str, float | None] = {}
        t = start
        for name, length in seconds.items():
            inside = [m for at, m in self.samples if t <= at < t + length]
            out[name] = round(max(inside), 1) if inside else None
            t += length
        return out


def timed_scan(paths: list[Path], sim_dir: Path, out: Path, db: Path | None = None) -> dict[str, Any]:
    """`distillguard scan` of `paths` with the simulator's accounts and intel: seconds, peak RSS of
    this process and its signal workers together (overall and per stage, sampled every 0.5 s; /proc,
    so Linux only; this process's own peak if higher than every sample), per-stage seconds
    (summary.json), campaigns and verdicts."""
    from distillguard.pipeline import scan

    t, start = time.perf_counter(), time.time()
    with RssSampler() as rss:
        result = scan(
            paths,
            out,
            accounts=sim_dir / "accounts.csv",
            intel=sorted((sim_dir / "intel").glob("*.json")),
            db=db,
        )
    seconds = time.perf_counter() - t
    summary = json.loads((out / "summary.json").read_text())
    return {
        "rows": result.exchanges,
        "seconds": seconds,
        "peak_mib": max([peak_mib(), *(m for _, m in rss.samples)]),
        "peak_mib_by_stage": rss.peaks(start, summary["timings_s"]),
        "timings_s": summary["timings_s"],
        "campaigns": len(result.campaigns),
        "verdicts": result.verdicts,
    }


def run_scan(path: Path, sim_dir: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return timed_scan([path], sim_dir, Path(tmp) / "scan")


def simulate_log(scale: str, seed: int, work: Path) -> tuple[Path, Path]:
    """(decompressed LiteLLM JSONL, simulator output folder) for one simulated scenario."""
    from distillguard.sim import simulate

    sim_dir = work / "sim"
    info = simulate(scenario="mixed", seed=seed, scale=scale, out=sim_dir)
    plain = work / "logs.jsonl"
    with gzip.open(info["paths"]["logs"], "rb") as src, plain.open("wb") as dst:
        shutil.copyfileobj(src, dst, 2**22)
    return plain, sim_dir


def report(bare: dict[str, Any], ours: dict[str, Any], title: str) -> float:
    console = Console()
    table = Table(title=title)
    for col in ("", "exchanges/s", "seconds", "peak MiB"):
        table.add_column(col, justify="right")
    for name, m in (("bare orjson parse", bare), ("distillguard scan", ours)):
        table.add_row(name, f"{m['rows'] / m['seconds']:,.0f}", f"{m['seconds']:.1f}", f"{m['peak_mib']:.0f}")
    console.print(table)
    stages = Table(title="scan stages (summary.json timings_s)")
    for col in ("stage", "seconds", "x bare parse"):
        stages.add_column(col, justify="right")
    for stage, seconds in ours["timings_s"].items():
        stages.add_row(stage, f"{seconds:.1f}", f"{seconds / bare['seconds']:.1f}")
    console.print(stages)
    ratio = float(ours["seconds"] / bare["seconds"])
    console.print(f"scan / bare parse time ratio: [bold]{ratio:.2f}x[/bold] (target <= 5x)")
    return ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="small", help="Simulator scale: small, medium or a float.")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("bench/results/scan.json"))
    ap.add_argument("--measure", choices=["bare", "scan"], help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--sim-dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        measured = run_bare(args.file) if args.measure == "bare" else run_scan(args.file, args.sim_dir)
        print(json.dumps(measured))
        return

    with tempfile.TemporaryDirectory() as tmp:
        plain, sim_dir = simulate_log(args.scale, args.seed, Path(tmp))
        size_mib = plain.stat().st_size / 2**20
        bare = in_subprocess("bare", plain, __file__)
        ours = in_subprocess("scan", plain, __file__, "--sim-dir", str(sim_dir))
    title = f"scan, {ours['rows']:,} simulated exchanges (scale {args.scale}, {size_mib:.0f} MiB JSONL)"
    ratio = report(bare, ours, title)
    write_results(
        args.out,
        {
            "scale": args.scale,
            "seed": args.seed,
            "file_mib": size_mib,
            "bare": bare,
            "scan": ours,
            "time_ratio": ratio,
            "stage_ratios": {k: v / bare["seconds"] for k, v in ours["timings_s"].items()},
        },
    )


if __name__ == "__main__":
    main()
