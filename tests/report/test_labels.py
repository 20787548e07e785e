"""The review loop: labels file in, verdicts out."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from distillguard.labels import Label, Labels, apply_labels, read_labels, write_labels


def _scores() -> pa.Table:
    return pa.table(
        {
            "account_id": ["a", "b", "c", "d", "e"],
            "score": [0.95, 0.70, 0.85, 0.60, 0.10],
            "verdict": ["block", "review", "block", "review", "allow"],
            "campaign_id": ["C1", "C1", "C2", "C2", None],
            "reasons": ["x", "y", "z", "w", ""],
            "reasons_json": ['[{"signal": "s", "weight": 1, "detail": "d"}]', "[]", "[]", "[]", "[]"],
        }
    )


CAMPAIGNS = [{"id": "C1", "accounts": ["a", "b"]}, {"id": "C2", "accounts": ["c", "d"]}]


def test_round_trip_and_latest_wins(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    write_labels(
        path,
        [
            Label(
                "account",
                "a",
                "dismiss",
                note='said "hi", twice',
                analyst="ana",
                at="2026-02-02T00:00:00Z",
                score=0.9,
            ),
            Label("account", "a", "confirm", analyst="bo", at="2026-02-01T00:00:00Z"),
            Label("campaign", "C2", "confirm"),
        ],
    )
    labels = read_labels(path)
    assert len(labels) == 2
    assert labels.accounts["a"] == Label(
        "account", "a", "dismiss", 'said "hi", twice', "ana", "2026-02-02T00:00:00Z", 0.9
    )
    assert labels.campaigns["C2"].score is None


@pytest.mark.parametrize(
    "text, error",
    [
        ("kind,id\naccount,a\n", "lacks column"),
        ("kind,id,label\nuser,a,confirm\n", "kind must be"),
        ("kind,id,label\naccount,a,ban\n", "label must be"),
        ("kind,id,label\naccount,,confirm\n", "empty id"),
        ("kind,id,label,score\naccount,a,confirm,high\n", "score must be a number"),
    ],
)
def test_bad_files_name_the_line(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=error):
        read_labels(path)


def test_apply_labels() -> None:
    labels = Labels()
    labels.add(Label("account", "a", "dismiss", score=0.9))  # 0.95 is within the margin: stays dismissed
    labels.add(Label("account", "b", "confirm"))
    labels.add(Label("campaign", "C2", "dismiss", score=0.7))  # c rose to 0.85: new evidence
    labels.add(Label("account", "e", "dismiss"))
    out = apply_labels(_scores(), labels, CAMPAIGNS)
    assert out.schema == _scores().schema
    assert out.column("verdict").to_pylist() == ["allow", "block", "block", "allow", "allow"]
    assert out.column("score").to_pylist() == _scores().column("score").to_pylist()
    reasons = [orjson.loads(r) for r in out.column("reasons_json").to_pylist()]
    assert [r["signal"] for r in reasons[0]] == ["s", "analyst_label"]
    assert "overruled: score rose from 0.70 to 0.85" in reasons[2][-1]["detail"]
    assert reasons[3][-1]["detail"].startswith("dismissed")
    assert "overruled" in out.column("reasons").to_pylist()[2]


def test_account_label_wins_over_campaign() -> None:
    labels = Labels()
    labels.add(Label("campaign", "C1", "confirm"))
    labels.add(Label("account", "b", "dismiss"))
    out = apply_labels(_scores(), labels, CAMPAIGNS)
    assert out.column("verdict").to_pylist()[:2] == ["block", "allow"]
