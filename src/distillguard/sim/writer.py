"""Render exchanges as LiteLLM `StandardLoggingPayload` JSON lines, plus the accounts and truth tables.

Field names follow litellm/types/utils.py, as `distillguard.io.litellm` reads them. Token counts
follow the text (about four characters a token for Latin script, one per CJK character), with noise.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from distillguard.io.litellm import REDACTED
from distillguard.sim.core import Account, Exchange
from distillguard.sim.populations import MODELS, REASONING_MODELS

TRUTH_COLUMNS = ("account_id", "label", "campaign_id", "actor", "capability", "population")
END_USER_COLUMNS = ("account_id", "end_user_id", "label", "campaign_id")
ACCOUNT_COLUMNS = (
    "account_id",
    "created_at",
    "email_domain",
    "payment_fingerprint",
    "country",
    "account_type",
    "verified",
)


def count_tokens(text: str | None) -> int:
    if not text:
        return 0
    wide = (len(text.encode("utf-8")) - len(text)) // 2  # ~ characters outside ASCII
    return max(1, (len(text) - wide) // 4 + wide)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _noisy(rng: np.random.Generator, n: int, sigma: float = 0.08) -> int:
    return max(1, round(n * float(rng.lognormal(0.0, sigma))))


def render(ex: Exchange, rng: np.random.Generator, metadata_only: bool) -> dict[str, Any]:
    """One StandardLoggingPayload for an exchange."""
    acct = ex.account
    request_id = f"chatcmpl-{rng.bytes(12).hex()}"
    failed = rng.random() < ex.fail_rate
    prompt_tokens = _noisy(rng, count_tokens(ex.system) + count_tokens(ex.user)) + 7
    visible = 0 if failed else _noisy(rng, count_tokens(ex.response), 0.12)
    reasoning = 0
    if ex.model in REASONING_MODELS and not failed:
        reasoning = round(visible * float(rng.uniform(0.8, 3.0)) * (1.0 + ex.reasoning))
    completion = visible + reasoning
    cached = 0
    if ex.system and rng.random() < 0.7:
        cached = (count_tokens(ex.system) // 64) * 64
    ttft = float(rng.gamma(2.0, 0.3)) + reasoning / 400.0
    duration = ttft + (0.0 if failed else completion / float(rng.uniform(45, 110)))
    start, end = ex.t, ex.t + duration
    deployment = MODELS[ex.model]

    messages: list[dict[str, str]] = []
    if metadata_only:
        messages = [{"role": "user", "content": REDACTED}]
        content = REDACTED
    else:
        if ex.system:
            messages.append({"role": "system", "content": ex.system})
        messages.append({"role": "user", "content": ex.user})
        content = ex.response
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    response: dict[str, Any] = {}
    error = None
    if failed:
        code, cls, msg = (
            ("429", "RateLimitError", "Rate limit reached for requests per minute")
            if ex.fail_rate > 0.01 or rng.random() < 0.6
            else ("500", "InternalServerError", "The server had an error while processing your request")
        )
        error = {
            "error_code": code,
            "error_class": cls,
            "llm_provider": "openai",
            "error_message": msg,
            "traceback": "",
        }
    else:
        response = {
            "id": request_id,
            "object": "chat.completion",
            "created": int(end),
            "model": deployment.split("/", 1)[1],
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
            ],
            "usage": {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
        }
    headers = dict(ex.headers or {})
    return {
        "id": request_id,
        "trace_id": request_id,
        "call_type": "acompletion",
        "stream": bool(ex.params.get("stream", False)),
        "status": "failure" if failed else "success",
        "custom_llm_provider": "openai",
        "startTime": round(start, 6),
        "endTime": round(end, 6),
        "completionStartTime": round(start + ttft, 6),
        "response_time": round(duration, 6),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "model": deployment.split("/", 1)[1],
        "model_group": ex.model,
        "model_id": deployment,
        "api_base": "https://api.openai.com/v1",
        "metadata": {
            "user_api_key_hash": acct.key_hash,
            "user_api_key_alias": None,
            "user_api_key_user_id": acct.account_id,
            "user_api_key_org_id": acct.org_id,
            "user_api_key_team_id": acct.team_id,
            "user_api_key_end_user_id": ex.end_user,
            "requester_ip_address": ex.ip,
            "user_agent": ex.user_agent,
            "requester_custom_headers": headers,
            "usage_object": usage,
        },
        "end_user": ex.end_user or "",
        "requester_ip_address": ex.ip,
        "messages": messages,
        "response": response,
        "model_parameters": ex.params,
        "error_str": error["error_message"] if error else None,
        "error_information": error,
        "hidden_params": {
            "model_id": deployment,
            "litellm_model_name": deployment,
            "api_base": "https://api.openai.com/v1",
            "response_cost": None,
        },
    }


def write_logs(
    path: Path, exchanges: Iterable[Exchange], rng: np.random.Generator, metadata_only: bool
) -> int:
    """Gzip JSON lines, with mtime 0 so the same exchanges give the same bytes."""
    n = 0
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=4) as gz,
    ):
        for ex in exchanges:
            gz.write(orjson.dumps(render(ex, rng, metadata_only)) + b"\n")
            n += 1
    return n


def account_rows(accounts: Iterable[Account]) -> Iterator[list[str]]:
    for a in accounts:
        yield [
            a.account_id,
            iso(a.created_at),
            a.email_domain,
            a.payment_fingerprint,
            a.country,
            a.account_type,
            str(a.verified).lower(),
        ]


def truth_rows(accounts: Iterable[Account]) -> Iterator[list[str]]:
    for a in accounts:
        yield [a.account_id, a.label, a.campaign_id, a.actor, a.capability, a.population]


def end_user_labels(exchanges: Iterable[Exchange]) -> dict[tuple[str, str], tuple[str, str]]:
    """Which end users of shared accounts are distilling (a reseller's account is not all one thing)."""
    rows: dict[tuple[str, str], tuple[str, str]] = {}
    for ex in exchanges:
        if ex.end_user and ex.account.label == "distiller":
            rows[(ex.account.account_id, ex.end_user)] = (
                ("distiller", ex.account.campaign_id) if ex.distilling else ("benign", "")
            )
    return rows


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def write_accounts(path: Path, accounts: list[Account]) -> None:
    write_csv(path, ACCOUNT_COLUMNS, account_rows(accounts))


def write_truth(path: Path, accounts: list[Account]) -> None:
    write_csv(path, TRUTH_COLUMNS, truth_rows(accounts))


def write_end_user_truth(path: Path, rows: dict[tuple[str, str], tuple[str, str]]) -> None:
    """`end_user_labels` as a CSV, sorted."""
    write_csv(path, END_USER_COLUMNS, ([a, u, label, c] for (a, u), (label, c) in sorted(rows.items())))
