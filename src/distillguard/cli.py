"""`distillguard` command line: ingest logs, scan them, simulate labelled traffic, train, benchmark."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from distillguard.io import READERS, ReadOptions, RejectSink
from distillguard.io.base import parse_networks

if TYPE_CHECKING:
    from distillguard.pipeline import ScanResult

app = typer.Typer(
    help="Detect, attribute and counter LLM distillation campaigns in API gateway logs.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)

LogsArg = Annotated[
    list[Path],
    typer.Argument(
        exists=True, dir_okay=False, help=f"Log files ({', '.join(READERS)}); gzip/zstd read as is."
    ),
]
TrustedOpt = Annotated[
    list[str] | None,
    typer.Option("--trusted-proxy", help="CIDR of your own proxies; X-Forwarded-For is read past them only."),
]
FormatOpt = Annotated[str | None, typer.Option("--format", help="Skip sniffing and use this reader.")]
IntelOpt = Annotated[
    list[Path] | None,
    typer.Option(
        exists=True, help="STIX 2.1 bundle of known actors, or a folder of them (*.json); repeat for more."
    ),
]
PolicyOpt = Annotated[Path | None, typer.Option(exists=True, help="Verdict policy YAML.")]
KeepResponsesOpt = Annotated[
    bool,
    typer.Option(
        "--keep-responses", help="Store the responses' text too (no stage reads it; not kept by default)."
    ),
]


class Engine(StrEnum):
    """Where `scan` runs (`store.ENGINES`)."""

    duckdb = "duckdb"
    spark = "spark"


def _options(
    trusted: list[str] | None, account: str | None = None, keep_responses: bool = False
) -> ReadOptions:
    try:
        networks = parse_networks(trusted or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--trusted-proxy") from exc
    return ReadOptions(trusted_proxies=networks, account_id=account, keep_responses=keep_responses)


def intel_files(paths: list[Path]) -> list[Path]:
    """STIX bundles named one by one or as folders: `--intel intel/` takes every *.json in it (a
    shell glob after one `--intel` would hand all but the first bundle to the logs argument)."""
    return [f for p in paths for f in (sorted(p.glob("*.json")) if p.is_dir() else [p])]


@app.command()
def ingest(
    logs: LogsArg,
    db: Annotated[Path, typer.Option(help="DuckDB file to append to.")] = Path("distillguard.duckdb"),
    rejects: Annotated[Path, typer.Option(help="Where rejected records go.")] = Path("rejects.jsonl"),
    trusted_proxy: TrustedOpt = None,
    batch_account: Annotated[
        str | None, typer.Option(help="Account id for OpenAI Batch files without an envelope.")
    ] = None,
    keep_responses: KeepResponsesOpt = False,
) -> None:
    """Append log files to the store; a file ingested twice adds nothing."""
    from distillguard.pipeline import ingest as run_ingest
    from distillguard.store import Store

    store = Store(db)
    sink = RejectSink()
    added = run_ingest(store, logs, sink, _options(trusted_proxy, batch_account, keep_responses))
    sink.write(rejects)
    console.print(f"added {added} events ({store.count_events()} in {db}); {len(sink)} rejected -> {rejects}")
    store.close()


@app.command()
def scan(
    logs: LogsArg,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("distillguard-out"),
    accounts: Annotated[
        Path | None, typer.Option(exists=True, help="Accounts table (CSV or Parquet).")
    ] = None,
    intel: IntelOpt = None,
    policy: PolicyOpt = None,
    db: Annotated[
        Path | None,
        typer.Option(
            help="Store: a DuckDB file (default OUT/distillguard.duckdb), or with --engine spark "
            "a work folder of Parquet datasets (default OUT/spark-store)."
        ),
    ] = None,
    trusted_proxy: TrustedOpt = None,
    batch_account: Annotated[
        str | None, typer.Option(help="Account id for OpenAI Batch files without an envelope.")
    ] = None,
    engine: Annotated[
        Engine, typer.Option(help="duckdb (one machine) or spark (the running or a local[2] session).")
    ] = Engine.duckdb,
    context: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="Cross-account context of the whole run (a folder written by CrossAccountContext.save), "
            "when LOGS hold one account-hash partition of it.",
        ),
    ] = None,
    keep_responses: KeepResponsesOpt = False,
) -> None:
    """Ingest logs and run every detection stage; writes accounts.csv, campaigns.json, report.html."""
    from distillguard.context import CrossAccountContext
    from distillguard.pipeline import scan as run_scan

    result = run_scan(
        logs,
        out,
        accounts=accounts,
        intel=intel_files(intel or []),
        policy_path=policy,
        db=db,
        options=_options(trusted_proxy, batch_account, keep_responses),
        engine=engine.value,
        context=CrossAccountContext.load(context) if context else None,
    )
    _print_result(out, result)


def _print_result(out: Path, result: ScanResult) -> None:
    table = Table(title=f"distillguard -> {out}")
    for col in ("exchanges", "accounts", "rejects", "campaigns", *result.verdicts):
        table.add_column(col, justify="right")
    table.add_row(
        str(result.exchanges),
        str(result.accounts),
        str(result.rejects),
        str(len(result.campaigns)),
        *(str(n) for n in result.verdicts.values()),
    )
    Console().print(table)


@app.command("link-partitions")
def link_partitions(
    partitions: Annotated[
        list[Path],
        typer.Argument(exists=True, dir_okay=False, help="The partition scans' DuckDB files."),
    ],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("distillguard-out"),
    intel: IntelOpt = None,
    policy: PolicyOpt = None,
) -> None:
    """Finish a partitioned run: campaigns over every partition's accounts, then the usual outputs.

    Each partition is scanned first (`scan --context`, with the run's merged cross-account context);
    linking needs all accounts at once, since two accounts that share a key may sit in two partitions.
    """
    from distillguard.pipeline import link_partitions as run_link

    result = run_link(partitions, out, intel=intel_files(intel or []), policy_path=policy)
    _print_result(out, result)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Output folder for logs, accounts, truth and intel.")],
    scenario: Annotated[str, typer.Option(help="Scenario name.")] = "mixed",
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 1,
    scale: Annotated[
        str, typer.Option(help="small (~50k exchanges), medium (~1M), anthropic, or a factor.")
    ] = "small",
    metadata_only: Annotated[bool, typer.Option(help="Log without prompt or response text.")] = False,
) -> None:
    """Write labelled gateway traffic (LiteLLM JSONL, accounts, truth.csv, STIX intel) built on real text."""
    from distillguard.sim import simulate as run_sim

    info = run_sim(scenario=scenario, seed=seed, scale=_scale(scale), out=out, metadata_only=metadata_only)
    console.print(f"simulated {scenario} seed={seed} scale={scale} -> {out}: {info}")


def _scale(scale: str) -> str | float:
    try:
        return float(scale)
    except ValueError:
        return scale


@app.command()
def demo(out: Annotated[Path, typer.Option(help="Output folder.")] = Path("demo-out")) -> None:
    """Simulate a small labelled week of traffic and scan it: the quickest look at what distillguard does."""
    from distillguard.pipeline import scan as run_scan
    from distillguard.sim import simulate as run_sim

    sim_dir = out / "sim"
    run_sim(scenario="mixed", seed=7, scale="small", out=sim_dir)
    result = run_scan(
        sorted(sim_dir.glob("logs*.jsonl*")),
        out / "scan",
        accounts=sim_dir / "accounts.csv",
        intel=sorted((sim_dir / "intel").glob("*.json")),
    )
    console.print(
        f"scanned {result.exchanges} exchanges from {result.accounts} accounts: "
        f"{len(result.campaigns)} campaigns, verdicts {result.verdicts}\n"
        f"report: {out / 'scan' / 'report.html'}   truth: {sim_dir / 'truth.csv'}"
    )


@app.command()
def train(
    seeds: Annotated[
        str, typer.Option(help="Comma-separated training seeds (keep them apart from bench seeds).")
    ] = "101,102,103,104,105,106,107,108,109,110",
    scale: Annotated[str, typer.Option(help="Simulation scale per seed.")] = "small",
    out: Annotated[
        Path | None, typer.Option(help="Model file (default: the one shipped in the package).")
    ] = None,
    benign_seeds: Annotated[
        str, typer.Option(help="Seeds of campaign-free worlds (more hard negatives); '' for none.")
    ] = "201,202,203,204,205,206,207,208,209,210",
) -> None:
    """Retrain the risk model on simulated labelled traffic (full content and metadata-only)."""
    from distillguard.score import DEFAULT_MODEL
    from distillguard.train import train as run_train

    run_train(
        seeds=[int(s) for s in seeds.split(",")],
        scale=_scale(scale),
        out=out or DEFAULT_MODEL,
        benign_seeds=[int(s) for s in benign_seeds.split(",") if s.strip()],
    )


@app.command()
def bench(
    out: Annotated[Path, typer.Option(help="Work folder; bench.json is written here.")] = Path("bench-out"),
    scenarios: Annotated[str, typer.Option(help="Comma-separated scenarios.")] = "mixed",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds (not the training ones).")] = "1,2,3",
    scale: Annotated[str, typer.Option(help="Simulation scale.")] = "small",
    metadata_only: Annotated[bool, typer.Option(help="Also run each scenario without prompt text.")] = True,
    replay: Annotated[
        bool,
        typer.Option(help="Replay each full-content log through the online detector (time to first flag)."),
    ] = True,
) -> None:
    """Detection quality of distillguard next to baselines (volume, PRADA, CoT keywords) in one table."""
    from distillguard.bench.run import run_bench

    out.mkdir(parents=True, exist_ok=True)
    run_bench(scenarios.split(","), [int(s) for s in seeds.split(",")], scale, out, metadata_only, replay)


@app.command()
def schema(out: Annotated[Path | None, typer.Option(help="Write the Markdown here.")] = None) -> None:
    """Print the canonical schema as Markdown (docs/schema.md is generated by this)."""
    from distillguard.schema import schema_markdown

    text = schema_markdown()
    if out:
        out.write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    app()
