"""The batch feature vector, rebuilt from streaming state: `observe` folds in one request, `vector` reads.

Each feature below mirrors its Ibis expression in `distillguard.features.account_features`,
including which rows count in each denominator (SQL means skip nulls), so a replay in time order
reproduces the batch row (see the module docstring of `state` for the approximations).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numba
import numpy as np

from distillguard.features import FEATURES
from distillguard.online.state import AccountState, histogram_median
from distillguard.schema import CAPABILITIES

_DAY = 86400.0
_DISTILL_CAPS = frozenset(c for c in CAPABILITIES if c != "general")


def epoch(value: datetime | float) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def observe(st: AccountState, e: Mapping[str, Any], s: Mapping[str, Any], new_model_early: bool) -> None:
    """Fold one event `e` and its request signals `s` into the account state."""
    ts = epoch(e["start_time"])
    st.n += 1
    st.add_gap(ts)
    st.hours[int(ts // 3600 % 24)] += 1
    d = st.distinct
    d["day"].add(str(int(ts // _DAY)))

    cap = s.get("capability")
    if cap is None:
        st.count("cap_null")
    else:
        st.count("cap_rows")
        st.count(f"cap_{cap}")
        if cap in _DISTILL_CAPS:
            st.count("distill")
    st.add_value("capability_score", s.get("capability_score"))
    tpl = s.get("template_id")
    if tpl is not None:
        st.count("tpl_rows")
        d["template"].add(tpl)
        st.add_key(st.templates, tpl)
    lang = s.get("language")
    if lang is not None:
        st.count("lang_rows")
        d["language"].add(lang)
        if lang != "en":
            st.count("non_en")
    for key in ("prompt_chars",):
        st.add_value(key, s.get(key))
    for key in ("prompt_tokens", "completion_tokens", "max_tokens"):
        st.add_value(key, e.get(key))
    temperature = e.get("temperature")
    if temperature is not None:
        st.temperature.add(float(temperature))

    flags = {
        "reasoning": (e.get("reasoning_tokens") or 0) > 0,
        "n_gt1": (e.get("n") or 1) > 1,
        "logprobs": bool(e.get("logprobs")),
        "stream": bool(e.get("stream")),
        "tools": (e.get("tools_count") or 0) > 0,
        "system": e.get("system_prompt") is not None,
        "error": e.get("status") != "success",
        "rate_limited": e.get("error_code") == "429",
        "referer": e.get("referer") is not None,
        "new_model_early": new_model_early,
    }
    for key, on in flags.items():
        if on:
            st.count(key)

    kind = s.get("ip_kind")
    if kind is not None:
        st.count("kind_rows")
        if kind == "hosting":
            st.count("hosting")
        elif kind in ("vpn", "tor", "proxy"):
            st.count("vpn_tor_proxy")
        elif kind == "residential":
            st.count("residential")
    for key, value in (
        ("ip", e.get("client_ip")),
        ("asn", s.get("asn")),
        ("ua", e.get("user_agent")),
        ("end_user", e.get("end_user_id")),
    ):
        if value is not None:
            d[key].add(str(value))
    prefix = s.get("ip_prefix")
    if prefix is not None:
        d["prefix"].add(prefix)
        st.add_key(st.prefixes, prefix)


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def _key_sharing(table: Mapping[str, int], accounts: np.ndarray) -> tuple[int, float]:
    """Over an account's requests per key (template or prefix), with `accounts` the distinct accounts
    on each key in the table's order: the requests on keys that three or more accounts use, and the
    mean of log10(accounts on the key) per request (a key of one account adds log10(1) = 0)."""
    counts = np.fromiter(table.values(), dtype=np.int64, count=len(table))
    shared, total, rows = _sharing(counts, accounts)
    return shared, _ratio(total, rows)


@numba.njit(cache=True, nogil=True)
def _sharing(counts: np.ndarray, accounts: np.ndarray) -> tuple[int, float, int]:  # pragma: no cover
    # One compiled pass: an account holds up to MAX_KEYS keys, and this runs at every rescoring.
    shared = rows = 0
    total = 0.0
    for i in range(len(counts)):
        rows += counts[i]
        if accounts[i] >= 3:
            shared += counts[i]
        if accounts[i] > 1:
            total += counts[i] * math.log10(accounts[i])
    return shared, total, rows


def static_features(account: Mapping[str, Any] | None) -> dict[str, float]:
    """The account-table features (NaN without an account row, as the batch left join gives)."""
    if account is None:
        return {
            "email_disposable": math.nan,
            "verified": math.nan,
            "is_free": math.nan,
            "is_enterprise": math.nan,
        }
    from distillguard.enrich.email import is_disposable

    domain = account.get("email_domain")
    kind = account.get("account_type")
    verified = account.get("verified")
    return {
        "email_disposable": float(isinstance(domain, str) and bool(domain) and is_disposable(domain)),
        "verified": math.nan if verified is None else float(verified),
        "is_free": math.nan if kind is None else float(kind == "free"),
        "is_enterprise": math.nan if kind is None else float(kind in ("enterprise", "partner")),
    }


def vector(
    st: AccountState,
    template_accounts: np.ndarray,
    prefix_accounts: np.ndarray,
    account: Mapping[str, Any] | None,
    static: Mapping[str, float] | None = None,
) -> np.ndarray:
    """The account's feature row in FEATURES order (NaN where batch gives null). `template_accounts`
    and `prefix_accounts` are `State.accounts_on` of its tables; `static` is
    `static_features(account)` when the caller keeps it."""
    c, d, n = st.counts, st.distinct, float(st.n)
    cap_rows, tpl_rows, kind_rows = c.get("cap_rows", 0), c.get("tpl_rows", 0), c.get("kind_rows", 0)
    active_days = d["day"].count()
    hours_total = sum(st.hours)
    hour_entropy = -sum(h / hours_total * math.log(h / hours_total) for h in st.hours if h)

    def mean(key: str) -> float:
        return _ratio(st.sums.get(key, 0.0), c.get(key + "#", 0))

    def share(key: str) -> float:
        return _ratio(c.get(key, 0), n)

    shared_rows, template_accounts_mean = _key_sharing(st.templates, template_accounts)
    created = account.get("created_at") if account else None
    prompt_sum = st.sums.get("prompt_tokens", 0.0) if c.get("prompt_tokens#") else math.nan
    completion_sum = st.sums.get("completion_tokens", 0.0) if c.get("completion_tokens#") else math.nan
    f: dict[str, float] = {
        "n_requests": n,
        "active_days": float(active_days),
        "requests_per_active_day": _ratio(n, active_days),
        "gap_cv": _ratio(st.gaps.std(), st.gaps.mean) if st.gaps.n else math.nan,
        "gap_median_s": histogram_median(st.gap_bins),
        "hour_entropy": float(hour_entropy),
        **{f"cap_{cap}_share": _ratio(c.get(f"cap_{cap}", 0), cap_rows) for cap in CAPABILITIES},
        "cap_unknown_share": share("cap_null"),
        "distill_cap_share": _ratio(c.get("distill", 0), cap_rows),
        "capability_score_mean": mean("capability_score"),
        "template_distinct_ratio": _ratio(d["template"].count(), tpl_rows),
        "template_top_share": _ratio(max(st.templates.values(), default=math.nan), tpl_rows),
        "template_shared_share": _ratio(shared_rows, tpl_rows),
        "template_shared_accounts_mean": template_accounts_mean,
        "language_distinct": float(d["language"].count()),
        "non_english_share": _ratio(c.get("non_en", 0), c.get("lang_rows", 0)),
        "prompt_chars_mean": mean("prompt_chars"),
        "prompt_tokens_mean": mean("prompt_tokens"),
        "completion_tokens_mean": mean("completion_tokens"),
        "completion_prompt_ratio": _ratio(completion_sum, prompt_sum),
        "reasoning_tokens_share": share("reasoning"),
        "max_tokens_mean": mean("max_tokens"),
        "temperature_mean": st.temperature.mean if st.temperature.n else math.nan,
        "temperature_std": st.temperature.std(),
        "n_gt1_share": share("n_gt1"),
        "logprobs_share": share("logprobs"),
        "stream_share": share("stream"),
        "tools_share": share("tools"),
        "system_prompt_share": share("system"),
        "error_share": share("error"),
        "rate_limited_share": share("rate_limited"),
        "hosting_share": _ratio(c.get("hosting", 0), kind_rows),
        "vpn_tor_proxy_share": _ratio(c.get("vpn_tor_proxy", 0), kind_rows),
        "residential_share": _ratio(c.get("residential", 0), kind_rows),
        "ip_distinct_ratio": _ratio(d["ip"].count(), n),
        "prefix_distinct": float(d["prefix"].count()),
        "asn_distinct": float(d["asn"].count()),
        "ua_distinct": float(d["ua"].count()),
        "prefix_accounts_mean": _key_sharing(st.prefixes, prefix_accounts)[1],
        "end_user_distinct": float(d["end_user"].count()),
        "has_referer_share": share("referer"),
        "new_model_early_share": share("new_model_early"),
        "account_age_days": (
            (st.first_ts - epoch(created)) / _DAY
            if created is not None and st.first_ts is not None
            else math.nan
        ),
        **(static_features(account) if static is None else static),
    }
    return np.array([f[name] for name in FEATURES], dtype=np.float64)
