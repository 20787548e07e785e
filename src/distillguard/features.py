"""Per-account features, written once as Ibis expressions so DuckDB and Spark compute the same thing.

Inputs are the canonical `events`, the per-request `request_signals` and the `accounts` table
(optionally with an `email_disposable` column added by enrichment). Every feature is a plain
number per account; `FEATURES` lists them in the order the risk model expects.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from distillguard.context import CrossAccountContext, context_tables, with_release
from distillguard.schema import CAPABILITIES

_DISTILL_CAPS = tuple(c for c in CAPABILITIES if c != "general")
_HOUR = 3600.0
_DAY = 86400.0
_EPOCH = ibis.timestamp("1970-01-01 00:00:00+00:00")

FEATURES: tuple[str, ...] = (
    "n_requests",
    "active_days",
    "requests_per_active_day",
    "gap_cv",
    "gap_median_s",
    "hour_entropy",
    *(f"cap_{c}_share" for c in CAPABILITIES),
    "cap_unknown_share",
    "distill_cap_share",
    "capability_score_mean",
    "template_distinct_ratio",
    "template_top_share",
    "template_shared_share",
    "template_shared_accounts_mean",
    "language_distinct",
    "non_english_share",
    "prompt_chars_mean",
    "prompt_tokens_mean",
    "completion_tokens_mean",
    "completion_prompt_ratio",
    "reasoning_tokens_share",
    "max_tokens_mean",
    "temperature_mean",
    "temperature_std",
    "n_gt1_share",
    "logprobs_share",
    "stream_share",
    "tools_share",
    "system_prompt_share",
    "error_share",
    "rate_limited_share",
    "hosting_share",
    "vpn_tor_proxy_share",
    "residential_share",
    "ip_distinct_ratio",
    "prefix_distinct",
    "asn_distinct",
    "ua_distinct",
    "prefix_accounts_mean",
    "end_user_distinct",
    "has_referer_share",
    "new_model_early_share",
    "account_age_days",
    "email_disposable",
    "verified",
    "is_free",
    "is_enterprise",
)


def epoch_s(t: ir.TimestampValue) -> ir.FloatingValue:
    """Seconds since the epoch with microseconds kept, alike on every engine: Ibis's `epoch_seconds`
    is DuckDB's fractional `epoch` but Spark's `unix_timestamp`, which truncates to whole seconds."""
    return t.delta(_EPOCH, unit="microsecond") / 1e6


def _share(cond: ir.BooleanValue) -> ir.FloatingScalar:
    return cond.cast("float64").mean()


def request_table(events: ir.Table, signals: ir.Table) -> ir.Table:
    """Events joined to their per-request signals, with the derived columns features need."""
    r = events.left_join(signals, "request_id").select(
        events.request_id,
        events.account_id,
        events.start_time,
        events.end_user_id,
        events.referer,
        events.model_requested,
        events.status,
        events.error_code,
        events.prompt_tokens,
        events.completion_tokens,
        events.reasoning_tokens,
        events.temperature,
        events.max_tokens,
        events.n,
        events.logprobs,
        events.stream,
        events.tools_count,
        events.system_prompt,
        events.client_ip,
        events.user_agent,
        signals.ip_prefix,
        signals.asn,
        signals.ip_kind,
        signals.language,
        signals.capability,
        signals.capability_score,
        signals.template_id,
        signals.prompt_chars,
    )
    return r.mutate(ts=epoch_s(r.start_time))


def account_features(
    events: ir.Table, signals: ir.Table, accounts: ir.Table, context: CrossAccountContext | None = None
) -> ir.Table:
    """One row per account in `events`: account_id plus every name in FEATURES.

    The cross-account context (accounts per template and prefix, models' first sightings) comes
    from `events` itself, or from `context` when `events` holds one partition of a larger run."""
    r = request_table(events, signals)

    tpl, pfx, mdl = context_tables(r) if context is None else context.tables()
    mdl = with_release(mdl)
    r = (
        r.left_join(tpl, "template_id")
        .left_join(pfx, "ip_prefix")
        .left_join(mdl, "model_requested")
        .select(r, "tpl_accounts", "pfx_accounts", "model_first", "model_released")
    )
    # A model first seen a day or more into the window was released during it.
    r = r.mutate(
        new_model_early=r.model_released & (r.ts - r.model_first < _DAY),
        gap=r.ts - r.ts.lag().over(group_by=r.account_id, order_by=r.ts),
        day=(r.ts / _DAY).floor(),
        hour=r.start_time.hour(),
    )

    caps = {
        f"cap_{c}_share": (r.capability == c).cast("float64").sum() / r.capability.count().nullif(0)
        for c in CAPABILITIES
    }
    agg = r.group_by("account_id").agg(
        n_requests=r.count(),
        active_days=r.day.nunique(),
        gap_mean=r.gap.mean(),
        gap_std=r.gap.std(),
        gap_median_s=r.gap.median(),
        **caps,
        cap_unknown_share=_share(r.capability.isnull()),
        distill_cap_share=r.capability.isin(_DISTILL_CAPS).cast("float64").sum()
        / r.capability.count().nullif(0),
        capability_score_mean=r.capability_score.mean(),
        template_distinct=r.template_id.nunique(),
        template_rows=r.template_id.count(),
        template_shared_share=(r.tpl_accounts >= 3).cast("float64").sum() / r.template_id.count().nullif(0),
        template_shared_accounts_mean=r.tpl_accounts.log10().mean(),
        language_distinct=r.language.nunique(),
        non_english_share=(r.language != "en").cast("float64").sum() / r.language.count().nullif(0),
        prompt_chars_mean=r.prompt_chars.mean(),
        prompt_tokens_mean=r.prompt_tokens.mean(),
        completion_tokens_mean=r.completion_tokens.mean(),
        completion_sum=r.completion_tokens.sum(),
        prompt_sum=r.prompt_tokens.sum(),
        reasoning_tokens_share=_share(r.reasoning_tokens.fill_null(0) > 0),
        max_tokens_mean=r.max_tokens.mean(),
        temperature_mean=r.temperature.mean(),
        temperature_std=r.temperature.std(),
        n_gt1_share=_share(r.n.fill_null(1) > 1),
        logprobs_share=_share(r.logprobs.fill_null(False)),
        stream_share=_share(r.stream.fill_null(False)),
        tools_share=_share(r.tools_count.fill_null(0) > 0),
        system_prompt_share=_share(r.system_prompt.notnull()),
        error_share=_share(r.status != "success"),
        rate_limited_share=_share(r.error_code.fill_null("") == "429"),
        hosting_share=_share(r.ip_kind == "hosting"),
        vpn_tor_proxy_share=_share(r.ip_kind.isin(("vpn", "tor", "proxy"))),
        residential_share=_share(r.ip_kind == "residential"),
        ip_distinct=r.client_ip.nunique(),
        prefix_distinct=r.ip_prefix.nunique(),
        asn_distinct=r.asn.nunique(),
        ua_distinct=r.user_agent.nunique(),
        prefix_accounts_mean=r.pfx_accounts.log10().mean(),
        end_user_distinct=r.end_user_id.nunique(),
        has_referer_share=_share(r.referer.notnull()),
        new_model_early_share=_share(r.new_model_early.fill_null(False)),
        first_ts=r.ts.min(),
    )
    hours = r.group_by(["account_id", "hour"]).agg(c=r.count())
    hours = hours.mutate(p=hours.c / hours.c.sum().over(group_by=hours.account_id))
    hour_entropy = hours.group_by("account_id").agg(hour_entropy=-(hours.p * hours.p.ln()).sum())
    with_tpl = r.filter(r.template_id.notnull())
    tops = with_tpl.group_by(["account_id", "template_id"]).agg(c=with_tpl.count())
    top_tpl = tops.group_by("account_id").agg(template_top=tops.c.max())

    acc = accounts
    disposable = acc.email_disposable if "email_disposable" in acc.columns else ibis.literal(False)
    acc = acc.select(
        "account_id",
        created_ts=epoch_s(acc.created_at),
        email_disposable=disposable.cast("float64"),
        verified=acc.verified.cast("float64"),
        is_free=(acc.account_type == "free").cast("float64"),
        is_enterprise=acc.account_type.isin(("enterprise", "partner")).cast("float64"),
    )
    f = (
        agg.left_join(hour_entropy, "account_id")
        .left_join(top_tpl, "account_id")
        .left_join(acc, "account_id")
        .select(agg, "hour_entropy", "template_top", *acc.columns[1:])
    )
    n = f.n_requests.cast("float64")
    out = f.mutate(
        requests_per_active_day=n / f.active_days.nullif(0),
        gap_cv=f.gap_std / f.gap_mean.nullif(0),
        template_distinct_ratio=f.template_distinct / f.template_rows.nullif(0),
        template_top_share=f.template_top / f.template_rows.nullif(0),
        completion_prompt_ratio=f.completion_sum / f.prompt_sum.nullif(0),
        ip_distinct_ratio=f.ip_distinct / n,
        account_age_days=(f.first_ts - f.created_ts) / _DAY,
    )
    return out.select("account_id", *FEATURES).order_by("account_id")
