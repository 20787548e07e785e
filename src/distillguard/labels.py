"""The analyst's review loop: a labels CSV read back into the next scan.

An analyst confirms or dismisses an account or a whole campaign, from the report's buttons or
by editing the CSV. The next scan honours it: a confirmed account stays blocked; a dismissed one
stays allowed unless new evidence arrives, defined as its score rising more than `margin` above
the score recorded in the label (the report records it on export). A label without a recorded
score holds unconditionally. An account label wins over its campaign's label.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

LABEL_COLUMNS: tuple[str, ...] = ("kind", "id", "label", "note", "analyst", "at", "score")
KINDS: tuple[str, ...] = ("account", "campaign")
DECISIONS: tuple[str, ...] = ("confirm", "dismiss")
NEW_EVIDENCE_MARGIN = 0.1
CONFIRMED_VERDICT = "block"
DISMISSED_VERDICT = "allow"


@dataclass(frozen=True)
class Label:
    kind: str
    id: str
    label: str
    note: str = ""
    analyst: str = ""
    at: str = ""
    score: float | None = None  # the score the analyst saw when labelling


@dataclass
class Labels:
    """The latest label per account and per campaign."""

    accounts: dict[str, Label] = field(default_factory=dict)
    campaigns: dict[str, Label] = field(default_factory=dict)

    def add(self, label: Label) -> None:
        (self.accounts if label.kind == "account" else self.campaigns)[label.id] = label

    def __len__(self) -> int:
        return len(self.accounts) + len(self.campaigns)


def read_labels(path: Path | str) -> Labels:
    """Read a labels CSV; for repeated ids the latest `at` wins (file order breaks ties)."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"kind", "id", "label"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: labels file lacks column(s) {sorted(missing)}")
        parsed = [_parse_row(row, f"{path}:{lineno}") for lineno, row in enumerate(reader, start=2)]
    labels = Labels()
    for label in sorted(parsed, key=lambda lab: lab.at):  # sorted() is stable: file order on ties
        labels.add(label)
    return labels


def _parse_row(row: Mapping[str, str | None], where: str) -> Label:
    kind, decision = (row.get("kind") or "").strip().lower(), (row.get("label") or "").strip().lower()
    ident = (row.get("id") or "").strip()
    if kind not in KINDS:
        raise ValueError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
    if decision not in DECISIONS:
        raise ValueError(f"{where}: label must be one of {DECISIONS}, got {decision!r}")
    if not ident:
        raise ValueError(f"{where}: empty id")
    raw_score = (row.get("score") or "").strip()
    try:
        score = float(raw_score) if raw_score else None
    except ValueError as exc:
        raise ValueError(f"{where}: score must be a number, got {raw_score!r}") from exc
    text = {k: (row.get(k) or "").strip() for k in ("note", "analyst", "at")}
    return Label(kind, ident, decision, score=score, **text)


def write_labels(path: Path | str, labels: Iterable[Label]) -> None:
    """Write labels in the same CSV format the report exports."""
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(LABEL_COLUMNS)
        for lab in labels:
            score = "" if lab.score is None else f"{lab.score:.4f}"
            writer.writerow([lab.kind, lab.id, lab.label, lab.note, lab.analyst, lab.at, score])


def apply_labels(
    scores: pa.Table,
    labels: Labels,
    campaigns: Iterable[Mapping[str, Any]] = (),
    margin: float = NEW_EVIDENCE_MARGIN,
) -> pa.Table:
    """Override verdicts in an `account_scores` table by the analyst's labels.

    `campaigns` is the campaigns.json list ({id, accounts, ...}); a campaign label applies to
    every account listed in it. Scores are left as computed; each overridden (or overruled)
    decision adds an `analyst_label` entry to `reasons_json`, so the report shows why.
    """
    campaign_of = {acc: str(c["id"]) for c in campaigns for acc in c.get("accounts", ())}
    columns = {
        name: scores.column(name).to_pylist()
        for name in ("verdict", "reasons", "reasons_json")
        if name in scores.column_names
    }
    ids, values = scores.column("account_id").to_pylist(), scores.column("score").to_pylist()
    for i, (account, score) in enumerate(zip(ids, values, strict=True)):
        label = labels.accounts.get(account) or labels.campaigns.get(campaign_of.get(account, ""))
        if label is None:
            continue
        verdict, detail = _decide(label, score, margin)
        if verdict is not None:
            columns["verdict"][i] = verdict
        if "reasons" in columns:
            columns["reasons"][i] = "; ".join(filter(None, [columns["reasons"][i], f"analyst: {detail}"]))
        entry = {"signal": "analyst_label", "weight": 0.0, "detail": detail, "evidence": asdict(label)}
        columns["reasons_json"][i] = orjson.dumps(
            [*orjson.loads(columns["reasons_json"][i] or "[]"), entry]
        ).decode()
    for name, column in columns.items():
        index = scores.schema.get_field_index(name)
        target = scores.schema.field(index)
        scores = scores.set_column(index, target, pa.array(column, target.type))
    return scores


def _decide(label: Label, score: float | None, margin: float) -> tuple[str | None, str]:
    """The verdict a label imposes (None: keep the computed one) and the reason shown for it."""
    who = f"{label.kind} {label.id}" + (f" by {label.analyst}" if label.analyst else "")
    if label.label == "confirm":
        return CONFIRMED_VERDICT, f"confirmed as distillation ({who})"
    if label.score is not None and score is not None and score > label.score + margin:
        return None, f"dismissal ({who}) overruled: score rose from {label.score:.2f} to {score:.2f}"
    return DISMISSED_VERDICT, f"dismissed as legitimate ({who})"
