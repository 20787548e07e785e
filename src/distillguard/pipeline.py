"""The batch pipeline: logs -> store -> request signals -> account features -> risk -> campaigns -> outputs.

Each stage reads what the previous one stored, so a re-run over the same store is idempotent and
a stage can be re-run alone. `scan` is what `distillguard scan` calls.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from distillguard.features import FEATURES, account_features
from distillguard.io import ReadOptions, RejectSink, read_events
from distillguard.policy import Policy
from distillguard.schema import REQUEST_SIGNAL_SCHEMA
from distillguard.score import DEFAULT_MODEL, RiskModel, feature_matrix
from distillguard.store import Store

REQUEST_SIGNALS = "request_signals"
ACCOUNT_FEATURES = "account_features"
ACCOUNT_SCORES = "account_scores"
SCORES_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("score", pa.float64()),
        ("verdict", pa.string()),
        ("campaign_id", pa.string()),
        ("reasons", pa.string()),
        ("reasons_json", pa.string()),
    ]
)


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    )


@dataclass
class ScanResult:
    out_dir: Path
    exchanges: int = 0
    added: int = 0
    accounts: int = 0
    rejects: int = 0
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    verdicts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def ingest(store: Store, paths: Sequence[Path], rejects: RejectSink, options: ReadOptions) -> int:
    """Append the events of every file; returns rows added (0 for files already ingested)."""
    added = 0
    with progress() as bar:
        task = bar.add_task("ingest", total=len(paths))
        for path in paths:
            added += store.append_events(_counted(read_events(path, rejects, options), bar, task))
            bar.advance(task)
    return added


def _counted(batches: Iterator[pa.RecordBatch], bar: Progress, task: Any) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        bar.update(task, description=f"ingest (+{batch.num_rows} rows)")
        yield batch


def compute_request_signals(store: Store, batch_rows: int = 20_000) -> int:
    """Signals for stored events that have none yet; returns rows computed."""
    from distillguard.signals import request_signals

    con = store.con
    if REQUEST_SIGNALS not in con.list_tables():
        con.create_table(REQUEST_SIGNALS, schema=ibis.Schema.from_pyarrow(REQUEST_SIGNAL_SCHEMA))
    todo = store.events.anti_join(con.table(REQUEST_SIGNALS), "request_id")
    total = int(todo.count().execute())
    done = 0
    with progress() as bar:
        task = bar.add_task("signals", total=total)
        for batch in todo.to_pyarrow_batches(chunk_size=batch_rows):
            out = request_signals(batch)
            con.insert(REQUEST_SIGNALS, pa.Table.from_batches([out]))
            done += batch.num_rows
            bar.update(task, completed=done)
    return done


def enriched_accounts(store: Store) -> ibis.Table:
    """Accounts with enrichment columns the features need (disposable e-mail domain)."""
    from distillguard.enrich.email import is_disposable

    accounts = store.accounts.to_pyarrow()
    flags = [bool(d) and is_disposable(d) for d in accounts.column("email_domain").to_pylist()]
    return ibis.memtable(accounts.append_column("email_disposable", pa.array(flags, pa.bool_())))


def compute_features(store: Store) -> pa.Table:
    feats = account_features(store.events, store.con.table(REQUEST_SIGNALS), enriched_accounts(store))
    table = feats.to_pyarrow()
    store.con.create_table(ACCOUNT_FEATURES, table, overwrite=True)
    return table


def score_accounts(features: pa.Table, model: RiskModel, policy: Policy) -> pa.Table:
    """Risk, verdict and reasons per account."""
    X = feature_matrix(features)
    scores = model.predict_proba(X) if len(X) else np.zeros(0)
    ids = features.column("account_id").to_pylist()
    verdicts, texts, jsons = [], [], []
    for i, (acc, s) in enumerate(zip(ids, scores, strict=True)):
        verdict = policy.verdict(acc, float(s))
        reasons = model.reasons(X[i]) if policy.raw_verdict(float(s)) != "allow" else []
        verdicts.append(verdict)
        texts.append("; ".join(r.text for r in reasons))
        jsons.append(json.dumps([r.to_dict() for r in reasons]))
    return pa.table(
        {
            "account_id": ids,
            "score": pa.array(scores, pa.float64()),
            "verdict": verdicts,
            "campaign_id": pa.nulls(len(ids), pa.string()),
            "reasons": texts,
            "reasons_json": jsons,
        },
        schema=SCORES_SCHEMA,
    )


def write_accounts_csv(scores: pa.Table, path: Path) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["account_id", "score", "verdict", "campaign_id", "reasons"])
        for row in scores.sort_by([("score", "descending")]).to_pylist():
            w.writerow(
                [
                    row["account_id"],
                    f"{row['score']:.4f}",
                    row["verdict"],
                    row["campaign_id"] or "",
                    row["reasons"],
                ]
            )


def prepare(
    store: Store,
    paths: Sequence[Path],
    rejects: RejectSink,
    options: ReadOptions,
    accounts: Path | None = None,
    timings: dict[str, float] | None = None,
) -> tuple[int, pa.Table]:
    """Ingest, request signals and account features; returns (rows added, features)."""
    timings = timings if timings is not None else {}
    t = time.perf_counter()
    added = ingest(store, paths, rejects, options)
    if accounts is not None:
        from distillguard.io.accounts import read_accounts

        store.upsert_accounts(read_accounts(accounts, rejects))
    timings["ingest"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    compute_request_signals(store)
    timings["signals"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    features = compute_features(store)
    timings["features"] = round(time.perf_counter() - t, 3)
    return added, features


def scan(
    paths: Sequence[Path],
    out_dir: Path,
    *,
    accounts: Path | None = None,
    intel: Sequence[Path] = (),
    policy_path: Path | None = None,
    model_path: Path = DEFAULT_MODEL,
    db: Path | None = None,
    options: ReadOptions | None = None,
) -> ScanResult:
    """Run every stage and write accounts.csv, campaigns.json, report.html, rejects.jsonl, summary.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    result = ScanResult(out_dir)
    store = Store(db or out_dir / "distillguard.duckdb")
    rejects = RejectSink()
    policy = Policy.load(policy_path)
    model = RiskModel.load(model_path)

    def timed(stage: str, t0: float) -> float:
        now = time.perf_counter()
        result.timings[stage] = round(now - t0, 3)
        return now

    t = time.perf_counter()
    result.added, features = prepare(
        store, paths, rejects, options or ReadOptions(), accounts, result.timings
    )
    t = time.perf_counter()
    scores = score_accounts(features, model, policy)
    t = timed("score", t)

    store.con.create_table(ACCOUNT_SCORES, scores, overwrite=True)
    result.exchanges = store.count_events()
    result.accounts = scores.num_rows
    result.rejects = len(rejects)
    result.verdicts = {v: 0 for v in ("allow", "review", "throttle", "verify", "block")}
    for v in scores.column("verdict").to_pylist():
        result.verdicts[v] += 1

    rejects.write(out_dir / "rejects.jsonl")
    write_accounts_csv(scores, out_dir / "accounts.csv")
    (out_dir / "campaigns.json").write_text(json.dumps(result.campaigns, indent=2, default=str))
    summary = {
        "exchanges": result.exchanges,
        "added": result.added,
        "accounts": result.accounts,
        "rejects": result.rejects,
        "campaigns": len(result.campaigns),
        "verdicts": result.verdicts,
        "inputs": [str(p) for p in paths],
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "timings_s": result.timings,
        "features": list(FEATURES),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    timed("outputs", t)
    store.close()
    return result
