"""Ingest throughput and peak memory on a generated LiteLLM JSONL, next to a bare orjson parse.

    python bench/ingest.py --rows 1000000

Each measurement runs in its own process so peak RSS is its own. The figure that matters is the
ratio of our ingest (read + validate + canonical Arrow + DuckDB append) to the bare parse of the
same file, measured in one run, since absolute rates vary with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

_PROMPTS = [
    "Explain the difference between a process and a thread in operating systems.",
    "Write a Python function that merges two sorted lists.",
    "What were the main causes of the French Revolution?",
    "Translate 'good morning, how are you?' into Spanish and German.",
]


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """LiteLLM StandardLoggingPayload lines with varied accounts, times, IPs and prompts."""
    rng = np.random.default_rng(seed)
    t0 = 1_764_000_000.0
    with path.open("wb") as fh:
        for i in range(rows):
            acct = f"acct-{rng.integers(0, 5000)}"
            start = t0 + i * 0.5
            prompt = _PROMPTS[i % len(_PROMPTS)]
            rec = {
                "id": f"chatcmpl-{i:09d}",
                "call_type": "acompletion",
                "status": "success",
                "startTime": start,
                "endTime": start + 1.2,
                "completionStartTime": start + 0.3,
                "prompt_tokens": len(prompt) // 4,
                "completion_tokens": 200,
                "total_tokens": 200 + len(prompt) // 4,
                "model": "gpt-4o",
                "model_group": "gpt-4o",
                "metadata": {
                    "user_api_key_hash": f"sk-hash-{acct}",
                    "user_api_key_user_id": acct,
                    "user_api_key_org_id": None,
                    "user_api_key_team_id": None,
                    "requester_ip_address": f"198.51.{rng.integers(0, 255)}.{rng.integers(1, 255)}",
                    "user_agent": "OpenAI/Python 1.55.0",
                },
                "requester_ip_address": None,
                "end_user": None,
                "messages": [{"role": "user", "content": prompt}],
                "response": {"choices": [{"message": {"role": "assistant", "content": "An answer. " * 20}}]},
                "model_parameters": {"temperature": 0.7, "max_tokens": 512},
                "hidden_params": {"model_id": None, "api_base": None},
            }
            fh.write(orjson.dumps(rec) + b"\n")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_bare(path: Path) -> dict[str, float]:
    t = time.perf_counter()
    n = 0
    with path.open("rb") as fh:
        for line in fh:
            orjson.loads(line)
            n += 1
    return {"rows": n, "seconds": time.perf_counter() - t, "peak_mib": peak_mib()}


def run_ingest(path: Path) -> dict[str, float]:
    from distillguard.io import RejectSink, read_events
    from distillguard.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        t = time.perf_counter()
        n = store.append_events(read_events(path, RejectSink()))
        seconds = time.perf_counter() - t
        store.close()
    return {"rows": n, "seconds": seconds, "peak_mib": peak_mib()}


def write_results(path: Path, payload: dict[str, Any]) -> None:
    """A benchmark's JSON under `path`, stamped with the date and the machine (and its load, since
    absolute times on a shared 2-core machine mean little without it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}",
    }
    path.write_text(json.dumps(stamp | payload, indent=2))


def in_subprocess(kind: str, path: Path, script: str = __file__, *extra: str) -> dict[str, Any]:
    """Run `script --measure kind --file path` in its own process (own peak RSS); last line is JSON.
    Its stderr (progress bars, a traceback) goes to ours, so a failed run says why."""
    out = subprocess.run(
        [sys.executable, script, "--measure", kind, "--file", str(path), *extra],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=Path("bench/results/ingest.json"))
    ap.add_argument("--measure", choices=["bare", "ingest"], help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        fn = run_bare if args.measure == "bare" else run_ingest
        print(json.dumps(fn(args.file)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "litellm.jsonl"
        generate(path, args.rows)
        size_mib = path.stat().st_size / 2**20
        bare = in_subprocess("bare", path)
        ours = in_subprocess("ingest", path)
    table = Table(title=f"ingest, {args.rows:,} LiteLLM exchanges ({size_mib:.0f} MiB JSONL)")
    for col in ("", "rows/s", "seconds", "peak MiB"):
        table.add_column(col, justify="right")
    for name, m in (("bare orjson parse", bare), ("distillguard ingest", ours)):
        table.add_row(name, f"{m['rows'] / m['seconds']:,.0f}", f"{m['seconds']:.1f}", f"{m['peak_mib']:.0f}")
    ratio = ours["seconds"] / bare["seconds"]
    Console().print(table)
    Console().print(f"ingest / bare parse time ratio: [bold]{ratio:.2f}x[/bold]")
    write_results(
        args.out,
        {
            "rows": args.rows,
            "file_mib": size_mib,
            "bare": bare,
            "ingest": ours,
            "time_ratio": ratio,
        },
    )


if __name__ == "__main__":
    main()
