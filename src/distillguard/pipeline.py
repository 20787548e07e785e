"""The batch pipeline: logs -> store -> request signals -> account features -> risk -> campaigns -> outputs.

Each stage reads what the previous one stored, so a re-run over the same store is idempotent and
a stage can be re-run alone. `scan` is what `distillguard scan` calls. Every stage takes an
`EventStore`: the DuckDB `Store`, or `engines.spark.SparkStore`, which runs the signal and
feature stages on Spark itself; the remaining stages are the same Ibis expressions on either.
"""

from __future__ import annotations

import csv
import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from distillguard.attribute import attribute, export_stix, load_intel
from distillguard.context import CrossAccountContext
from distillguard.features import FEATURES, account_features, request_table
from distillguard.io import READERS, ReadOptions, RejectSink, detect_format, read_events
from distillguard.io.base import LineReader, as_asked
from distillguard.io.blocks import iter_blocks, read_block, renumbered
from distillguard.labels import apply_labels, read_labels
from distillguard.link import LinkResult, edge_table, find_campaigns
from distillguard.policy import Policy
from distillguard.report import write_report
from distillguard.schema import REQUEST_SIGNAL_SCHEMA, VERDICTS
from distillguard.score import DEFAULT_MODEL, RiskModel, feature_matrix
from distillguard.signals import (
    PROMPT_INPUTS,
    SIGNAL_INPUTS,
    event_signals,
    prompt_signal_schema,
    prompt_table_schema,
    with_prompt_signals,
)
from distillguard.signals.workers import SignalWorkers, default_workers
from distillguard.store import (
    ACCOUNT_EDGES,
    ACCOUNT_FEATURES,
    ACCOUNT_SCORES,
    ACCOUNTS,
    EVENTS,
    REQUEST_SIGNALS,
    EngineStages,
    EventStore,
    Store,
    most_frequent,
    open_store,
)

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


def ingest(
    store: EventStore,
    paths: Sequence[Path],
    rejects: RejectSink,
    options: ReadOptions,
    workers: SignalWorkers | None = None,
) -> int:
    """Append the events of every file; returns rows added (0 for files already ingested). Response
    text is stored only with `options.keep_responses`. With `workers`, the lines of a line-oriented
    format (LiteLLM JSON lines) are converted in blocks on every worker process and this one."""
    added = 0
    with progress() as bar:
        task = bar.add_task("ingest", total=len(paths))
        for path in paths:
            added += store.append_events(_counted(file_events(path, rejects, options, workers), bar, task))
            bar.advance(task)
    return added


def file_events(
    path: Path, rejects: RejectSink, options: ReadOptions, workers: SignalWorkers | None = None
) -> Iterator[pa.RecordBatch]:
    """One file's event batches, in file order, without response text unless `options.keep_responses`."""
    name = detect_format(path)
    reader = READERS.get(name or "")
    if name is None or workers is None or workers.workers < 2 or not isinstance(reader, LineReader):
        yield from map(partial(as_asked, options), read_events(path, rejects, options, name))
        return
    # Converting lines is most of ingest, and Python work per line: blocks of lines are converted
    # on every worker process and this one, which also stores the batches (see io/blocks.py).
    with tempfile.TemporaryDirectory(prefix="distillguard-ingest-") as spill:
        blocks = iter_blocks(path, Path(spill))
        lines_before = 0
        for batches, rejected, lines in workers.apply(read_block, ((name, b, options) for b in blocks)):
            rejects.rejects.extend(renumbered(rejected, lines_before))
            lines_before += lines
            yield from batches


def _counted(batches: Iterator[pa.RecordBatch], bar: Progress, task: Any) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        bar.update(task, description=f"ingest (+{batch.num_rows} rows)")
        yield batch


def compute_request_signals(
    store: EventStore, batch_rows: int = 5_000, workers: SignalWorkers | None = None
) -> int:
    """Signals for stored events that have none yet; returns rows computed. `workers` computes
    them in other processes (started by the caller, so their start-up overlaps its other work);
    without, in this one.

    The prompt signals are computed once per distinct prompt, then joined to the events in the
    engine, and the other signals per event: the events' text is neither read out of the store nor
    sent to a worker process, and no prompt is computed twice in two processes."""
    if isinstance(store, EngineStages):
        return store.compute_request_signals()
    if not isinstance(store, Store):
        raise TypeError(f"{type(store).__name__}: signals are computed here only for a DuckDB Store")

    con = store.con
    if REQUEST_SIGNALS not in con.list_tables():
        con.create_table(REQUEST_SIGNALS, schema=ibis.Schema.from_pyarrow(REQUEST_SIGNAL_SCHEMA))
    todo = store.events.select(*SIGNAL_INPUTS).anti_join(con.table(REQUEST_SIGNALS), "request_id")
    total = int(todo.count().execute())
    if not total:
        return 0
    workers = workers or SignalWorkers(1)
    # The prompt as the prompt signals see it (`signals.base.prompt_text`): none without logged
    # content or without user text, and then no system prompt either.
    user = ibis.ifelse(todo.content_present, todo.user_text, ibis.null(str))
    system = ibis.ifelse(user.notnull(), todo.system_prompt, ibis.null(str))
    todo = todo.mutate(user_text=user, system_prompt=system)
    distinct = todo.select("system_prompt", "user_text").distinct()
    prompts = distinct.mutate(content_present=distinct.user_text.notnull()).select(*PROMPT_INPUTS)
    with store.scratch_table(prompt_table_schema()) as (by_prompt, known):
        with progress() as bar:
            # No total: counting the distinct prompts would run the DISTINCT over every text twice.
            task = bar.add_task("signals: prompts", total=None)
            batches = ((b,) for b in stream(store, prompts, batch_rows))
            for out in workers.apply(with_prompt_signals, batches):
                store.append_arrow(by_prompt, pa.Table.from_batches([out]))
                bar.advance(task, out.num_rows)
        same = [todo[c].identical_to(known[c]) for c in ("system_prompt", "user_text")]
        inputs = [c for c in SIGNAL_INPUTS if c not in PROMPT_INPUTS]
        rows = todo.left_join(known, same).select(*inputs, *prompt_signal_schema().names)
        done = 0
        with progress() as bar:
            task = bar.add_task("signals", total=total)
            for out in workers.apply(event_signals, ((b,) for b in stream(store, rows, 10 * batch_rows))):
                store.append_arrow(REQUEST_SIGNALS, pa.Table.from_batches([out]))
                done += out.num_rows
                bar.update(task, completed=done)
    return done


def stream(store: Store, expr: ibis.Table, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The expression's rows in batches of `batch_rows`, read through a cursor of its own: on the
    connection that inserts, DuckDB closes a pending result at the next query, which ended a stream
    after its first batch and left every later event without signals."""
    result = store.con.con.cursor().execute(str(store.con.compile(expr)))
    # `to_arrow_reader` in recent DuckDB, where `fetch_record_batch` is deprecated; older ones lack it.
    yield from (
        result.to_arrow_reader(batch_rows)
        if hasattr(result, "to_arrow_reader")
        else result.fetch_record_batch(batch_rows)
    )


def enriched_accounts(store: EventStore) -> ibis.Table:
    """Accounts with enrichment columns the features need (disposable e-mail domain)."""
    from distillguard.enrich.email import is_disposable

    accounts = store.accounts.to_pyarrow()
    flags = [bool(d) and is_disposable(d) for d in accounts.column("email_domain").to_pylist()]
    return ibis.memtable(accounts.append_column("email_disposable", pa.array(flags, pa.bool_())))


def compute_features(store: EventStore, context: CrossAccountContext | None = None) -> pa.Table:
    """Account features of the store's accounts (with `context`: as part of a larger run)."""
    if isinstance(store, EngineStages):
        return store.compute_features(context)
    feats = account_features(store.events, store.table(REQUEST_SIGNALS), enriched_accounts(store), context)
    table = feats.to_pyarrow()
    store.write_table(ACCOUNT_FEATURES, table)
    return table


def cross_account_context(store: EventStore) -> CrossAccountContext:
    """The store's own cross-account context: a partition's part of a partitioned run's context
    (`CrossAccountContext.merge` the partitions', then scan each with the merged one)."""
    return CrossAccountContext.of(request_table(store.events, store.table(REQUEST_SIGNALS)))


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


def link_and_attribute(
    store: EventStore, scores: pa.Table, policy: Policy, intel_paths: Sequence[Path]
) -> tuple[pa.Table, list[dict[str, Any]], dict[str, Any]]:
    """Campaigns over the account graph, lifted member scores, attribution and the STIX bundle."""
    events, signals, accounts = store.events, store.table(REQUEST_SIGNALS), store.accounts
    # Kept in the engine (the report draws campaigns from it): only ties around suspicious accounts come out.
    edges = store.materialize(ACCOUNT_EDGES, edge_table(events, signals, accounts))
    linked = find_campaigns(edges, scores.select(["account_id", "score"]), events, signals, accounts)
    attributions = attribute(linked.campaigns, events, signals, accounts, load_intel(list(intel_paths)))
    records = [
        c.record(attributions[c.id].record() if c.id in attributions else None) for c in linked.campaigns
    ]
    stix = export_stix(linked.campaigns, attributions)
    return lift_by_campaign(scores, linked, policy), records, stix


def lift_by_campaign(scores: pa.Table, linked: LinkResult, policy: Policy) -> pa.Table:
    """Give each whole-account campaign member its campaign id, lifted score, verdict and a reason."""
    member_of = linked.account_campaigns()
    rows = linked.assignments.to_pydict()
    lifted = {
        a: s
        for a, u, s in zip(rows["account_id"], rows["end_user_id"], rows["lifted_score"], strict=True)
        if u is None
    }
    campaign = {c.id: c for c in linked.campaigns}
    out = scores.to_pylist()
    for row in out:
        cid = member_of.get(row["account_id"])
        if cid is None:
            continue
        c = campaign[cid]
        new = max(row["score"], float(lifted.get(row["account_id"], 0.0)))
        kinds = ", ".join(e["kind"] for e in c.edges[:4]) if c.edges else "shared infrastructure"
        detail = (
            f"member of {cid} ({len(c.accounts)} accounts, campaign score {c.score:.2f}, linked by {kinds})"
        )
        reason = {
            "signal": "campaign",
            "weight": round(c.score, 4),
            "detail": detail,
            "evidence": {"campaign_id": cid, "score_before": row["score"], "score_after": new},
        }
        row.update(
            campaign_id=cid,
            score=new,
            verdict=policy.verdict(row["account_id"], new),
            reasons="; ".join(filter(None, [detail, row["reasons"]])),
            reasons_json=json.dumps([reason, *json.loads(row["reasons_json"] or "[]")]),
        )
    return pa.Table.from_pylist(out, schema=scores.schema)


def attach_evidence(store: EventStore, scores: pa.Table, per_account: int = 3, chars: int = 240) -> pa.Table:
    """Add checkable evidence to every account above allow: its top templates with an example prompt
    (the first in text order, cut to `chars`), its top IP prefixes with their kind, and its user
    agents; `per_account` of each, the most requests first, ties in key order."""
    flagged = scores.filter(pc.not_equal(scores.column("verdict"), "allow")).select(["account_id"])
    if flagged.num_rows == 0:
        return scores
    ev = store.events
    # A table to join, not a list of literals: ten thousand of them cost seconds of SQL per query.
    ev = ev.filter(ev.account_id.isin(ibis.memtable(flagged).account_id))
    r = ev.left_join(store.table(REQUEST_SIGNALS), "request_id")
    t = r.filter(r.template_id.notnull())
    keys = ["account_id", "template_id"]
    tpl = (
        t.group_by(keys)
        .agg(n=t.count(), example=t.user_text.min().substr(0, chars))
        .left_join(most_frequent(t, keys, "capability"), keys)
        .select(*keys, "n", "example", "capability")
    )
    ips = r.group_by(["account_id", "ip_prefix", "ip_kind", "asn_org"]).agg(n=r.count())
    uas = r.group_by(["account_id", "user_agent"]).agg(n=r.count())
    by_account: dict[str, dict[str, list[dict[str, Any]]]] = {}
    parts = (
        ("templates", tpl, ["template_id"]),
        ("ip_prefixes", ips, ["ip_prefix", "ip_kind", "asn_org"]),
        ("user_agents", uas, ["user_agent"]),
    )
    for kind, table, key in parts:
        order = [ibis.desc(table.n), *(table[k] for k in key)]
        top = table.mutate(rank=ibis.row_number().over(group_by=table.account_id, order_by=order))
        top = top.filter(top["rank"] < per_account).order_by(["account_id", "rank"]).drop("rank")
        for row in top.to_pyarrow().to_pylist():
            by_account.setdefault(row.pop("account_id"), {}).setdefault(kind, []).append(row)
    out = scores.to_pylist()
    for row in out:
        evidence = by_account.get(row["account_id"])
        if evidence:
            entry = {"signal": "evidence", "weight": 0.0, "detail": "traffic sample", "evidence": evidence}
            row["reasons_json"] = json.dumps([*json.loads(row["reasons_json"] or "[]"), entry], default=str)
    return pa.Table.from_pylist(out, schema=scores.schema)


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


# Logs smaller than this (about 20,000 exchanges of gzipped JSON lines) are signalled in this process:
# below it, a worker's start-up (about 3 s) costs more than the half of the signals it would take over.
PARALLEL_SIGNALS_MIN_BYTES = 16 * 2**20


def signal_workers(store: EventStore, paths: Sequence[Path]) -> int:
    """How many processes compute the request signals of a scan of `paths` into `store`."""
    # An engine store signals on its own workers (Spark's mapInArrow); a small log is not worth one.
    if not isinstance(store, Store) or sum(p.stat().st_size for p in paths) < PARALLEL_SIGNALS_MIN_BYTES:
        return 1
    return default_workers()


def prepare(
    store: EventStore,
    paths: Sequence[Path],
    rejects: RejectSink,
    options: ReadOptions,
    accounts: Path | None = None,
    timings: dict[str, float] | None = None,
    context: CrossAccountContext | None = None,
) -> tuple[int, pa.Table]:
    """Ingest, request signals and account features; returns (rows added, features)."""
    timings = timings if timings is not None else {}
    # Started before ingest, so that they load their models while it runs.
    with SignalWorkers(signal_workers(store, paths)) as workers:
        t = time.perf_counter()
        added = ingest(store, paths, rejects, options, workers)
        if accounts is not None:
            from distillguard.io.accounts import read_accounts

            store.upsert_accounts(read_accounts(accounts, rejects))
        timings["ingest"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        compute_request_signals(store, workers=workers)
        timings["signals"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    features = compute_features(store, context)
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
    labels: Path | None = None,
    engine: str = "duckdb",
    store: EventStore | None = None,
    context: CrossAccountContext | None = None,
) -> ScanResult:
    """Run every stage and write accounts.csv, campaigns.json, report.html, rejects.jsonl, summary.json.

    `engine` picks the store `scan` opens at `db`: a DuckDB file (default OUT/distillguard.duckdb)
    or a Spark work directory (default OUT/spark-store). A caller with its own store (a Spark
    store on a cluster session, say) passes it as `store` and closes it itself. `context` is the
    merged cross-account context when the log holds one partition of a larger run's accounts.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    result = ScanResult(out_dir)
    owned = store is None
    if store is None:
        default = "distillguard.duckdb" if engine == "duckdb" else f"{engine}-store"
        store = open_store(engine, db or out_dir / default)
    rejects = RejectSink()
    policy = Policy.load(policy_path)
    model = RiskModel.load(model_path)

    result.added, features = prepare(
        store, paths, rejects, options or ReadOptions(), accounts, result.timings, context
    )
    conclude(
        store, features, out_dir, result, policy, model, intel, labels, rejects, inputs=paths, started=started
    )
    if owned:
        store.close()
    return result


def conclude(
    store: EventStore,
    features: pa.Table,
    out_dir: Path,
    result: ScanResult,
    policy: Policy,
    model: RiskModel,
    intel: Sequence[Path] = (),
    labels: Path | None = None,
    rejects: RejectSink | None = None,
    *,
    inputs: Sequence[Path] = (),
    started: datetime | None = None,
) -> None:
    """Everything after the account features: scores, campaigns, attribution, evidence, and the
    outputs (accounts.csv, campaigns.json, stix.json, summary.json, report.html) in `out_dir`."""
    started = started or datetime.now(UTC)
    rejects = rejects or RejectSink()

    def timed(stage: str, t0: float) -> float:
        now = time.perf_counter()
        result.timings[stage] = round(now - t0, 3)
        return now

    t = time.perf_counter()
    scores = score_accounts(features, model, policy)
    t = timed("score", t)
    scores, result.campaigns, stix = link_and_attribute(store, scores, policy, intel)
    if labels is not None:
        scores = apply_labels(scores, read_labels(labels), result.campaigns)
    scores = attach_evidence(store, scores)
    t = timed("link", t)

    store.write_table(ACCOUNT_SCORES, scores)
    result.exchanges = store.count_events()
    result.accounts = scores.num_rows
    result.rejects = len(rejects)
    result.verdicts = dict.fromkeys(VERDICTS, 0)
    for v in scores.column("verdict").to_pylist():
        result.verdicts[v] += 1

    rejects.write(out_dir / "rejects.jsonl")
    write_accounts_csv(scores, out_dir / "accounts.csv")
    (out_dir / "campaigns.json").write_text(json.dumps(result.campaigns, indent=2, default=str))
    (out_dir / "stix.json").write_text(json.dumps(stix, indent=2, default=str))
    summary = {
        "exchanges": result.exchanges,
        "added": result.added,
        "accounts": result.accounts,
        "rejects": result.rejects,
        "campaigns": len(result.campaigns),
        "verdicts": result.verdicts,
        "inputs": [str(p) for p in inputs],
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "timings_s": result.timings,
        "features": list(FEATURES),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    # write_report reads the store through the EventStore members only (report/data.py).
    write_report(out_dir, store)
    timed("outputs", t)
    (out_dir / "summary.json").write_text(json.dumps({**summary, "timings_s": result.timings}, indent=2))


def union_partitions(store: Store, partitions: Sequence[Path]) -> pa.Table:
    """Copy the events, accounts, request signals and account features of partition scans (DuckDB
    files of one run's disjoint account partitions) into `store`; returns the features of all.

    The graph stage cannot run per partition: an edge joins two accounts that share a key (a
    template, an IP at the same hour), and the two may sit in different partitions. So the
    partitions' signals and features, computed with the merged cross-account context, are brought
    together and linking runs once over every account.
    """
    raw = store.con.con
    names = [f"partition_{i}" for i in range(len(partitions))]
    for name, path in zip(names, partitions, strict=True):
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: no partition store there")
        quoted = str(Path(path).resolve()).replace("'", "''")  # a SQL string literal
        raw.execute(f"ATTACH '{quoted}' AS {name} (READ_ONLY)")
    try:
        for name, path in zip(names, partitions, strict=True):
            held = {
                r[0]
                for r in raw.execute(
                    f"SELECT table_name FROM duckdb_tables() WHERE database_name = '{name}'"
                ).fetchall()
            }
            missing = [t for t in (EVENTS, ACCOUNTS, REQUEST_SIGNALS, ACCOUNT_FEATURES) if t not in held]
            if missing:
                raise ValueError(
                    f"{path}: not a scanned partition (no table {', '.join(missing)}); scan it first"
                )

        def union(table: str) -> str:
            return " UNION ALL BY NAME ".join(f'SELECT * FROM {n}."{table}"' for n in names)

        # The store made events and accounts with their schema; the derived tables come as they are.
        raw.execute(f'INSERT INTO "{EVENTS}" BY NAME {union(EVENTS)}')
        # Each partition was scanned with the whole accounts file: keep one row per account.
        raw.execute(
            f'INSERT INTO "{ACCOUNTS}" BY NAME SELECT DISTINCT ON (account_id) * FROM ({union(ACCOUNTS)})'
        )
        for table in (REQUEST_SIGNALS, ACCOUNT_FEATURES):
            raw.execute(f'CREATE OR REPLACE TABLE "{table}" AS {union(table)}')
    finally:
        for name in names:
            raw.execute(f"DETACH {name}")
    return store.table(ACCOUNT_FEATURES).to_pyarrow()


def link_partitions(
    partitions: Sequence[Path],
    out_dir: Path,
    *,
    intel: Sequence[Path] = (),
    policy_path: Path | None = None,
    model_path: Path = DEFAULT_MODEL,
    labels: Path | None = None,
) -> ScanResult:
    """The last pass of a partitioned run: scores, campaigns over every partition's accounts,
    attribution and the outputs, as `scan` writes them, from the partitions' DuckDB files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    result = ScanResult(out_dir)
    db = out_dir / "distillguard.duckdb"
    for stale in (db, db.with_suffix(".duckdb.wal")):  # derived from the partitions: rebuilt each run
        stale.unlink(missing_ok=True)
    store = Store(db)
    try:
        features = union_partitions(store, partitions)
        result.added = store.count_events()
        policy, model = Policy.load(policy_path), RiskModel.load(model_path)
        conclude(
            store, features, out_dir, result, policy, model, intel, labels, inputs=partitions, started=started
        )
    finally:
        store.close()
    return result
