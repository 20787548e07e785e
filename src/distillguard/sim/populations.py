"""Benign populations, including the hard negatives a real provider has.

Each generator returns (accounts, exchanges). Volumes are per account and stable across scales;
the number of accounts (or, for singleton tenants, their volume) grows with the scale.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping

import numpy as np

from distillguard.sim import infra, templates
from distillguard.sim.core import DAY, Account, Ctx, Exchange
from distillguard.sim.text import champ_problems, humaneval_problems, sharegpt_code_pairs, sharegpt_pairs

Generated = tuple[list[Account], list[Exchange]]

# Local-hour activity of people (index = hour); nights are quiet, evenings busy.
_DIURNAL = np.array(
    [2, 1, 0.6, 0.4, 0.4, 0.6, 1.2, 2.5, 4, 5, 5.5, 5.5, 5, 5.5, 5.5, 5, 5, 5, 5, 5.5, 6, 5.5, 4.5, 3]
)
_WORKDAY = np.array(
    [0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 1.5, 4, 7, 8, 8, 6, 7, 8, 8, 7, 5, 3, 2, 1.5, 1, 0.6, 0.3]
)

# Models of the provider: LiteLLM model group -> deployment. Reasoning models spend hidden tokens.
MODELS = {
    "gpt-4o": "openai/gpt-4o-2024-08-06",
    "gpt-4o-mini": "openai/gpt-4o-mini-2024-07-18",
    "o3-mini": "openai/o3-mini-2025-01-31",
    "gpt-4.1": "openai/gpt-4.1-2025-04-14",
}
REASONING_MODELS = frozenset({"o3-mini"})
NEW_MODEL = "gpt-4.1"
NEW_MODEL_RELEASE_DAY = 4.0  # days after the window starts


def rhythm_times(
    ctx: Ctx, n: int, tz_hours: float, hours: np.ndarray = _DIURNAL, weekend: float = 0.6
) -> np.ndarray:
    """n request times following a local daily rhythm, as UTC epoch seconds."""
    days = np.arange(int(np.ceil(ctx.days)))
    day_w = np.where(days % 7 >= 5, weekend, 1.0)  # the window starts on a Monday
    d = ctx.rng.choice(days, size=n, p=day_w / day_w.sum())
    h = ctx.rng.choice(24, size=n, p=hours / hours.sum())
    local = d * DAY + h * 3600.0 + ctx.rng.random(n) * 3600.0
    t = ctx.start + local - tz_hours * 3600.0
    return np.clip(t, ctx.start, ctx.end - 1.0)


def session_times(ctx: Ctx, n: int, tz_hours: float, hours: np.ndarray = _DIURNAL) -> np.ndarray:
    """Requests in sessions: a few session starts, then follow-ups seconds to minutes apart."""
    n_sessions = max(1, int(np.ceil(n / max(1.0, ctx.rng.gamma(2.0, 1.5)))))
    starts = rhythm_times(ctx, n_sessions, tz_hours, hours)
    which = ctx.rng.integers(0, n_sessions, size=n)
    gaps = ctx.rng.exponential(90.0, size=n) * (ctx.rng.random(n) < 0.8)
    t = starts[which] + np.cumsum(gaps) % 3600.0
    return np.clip(np.sort(t), ctx.start, ctx.end - 1.0)


def choose_model(ctx: Ctx, t: float, weights: Mapping[str, float], adopt_new: float = 0.15) -> str:
    """A model from the account's mix; after the new model's release some traffic tries it."""
    if t >= ctx.start + NEW_MODEL_RELEASE_DAY * DAY and ctx.rng.random() < adopt_new:
        return NEW_MODEL
    names = list(weights)
    p = np.array([weights[m] for m in names])
    return names[int(ctx.rng.choice(len(names), p=p / p.sum()))]


def chat_params(ctx: Ctx, stream_share: float = 0.5) -> dict[str, object]:
    """A client's fixed sampling settings (clients rarely change them between calls)."""
    params: dict[str, object] = {
        "temperature": float(ctx.pick((0.0, 0.2, 0.7, 0.7, 1.0, 1.0))),
        "max_tokens": int(ctx.pick((512, 1024, 2048, 4096, 4096))),
        "stream": bool(ctx.rng.random() < stream_share),
    }
    if ctx.rng.random() < 0.05:
        params["n"] = 2
    return params


def tool_schemas(specs: tuple[tuple[str, str, dict[str, str]], ...]) -> list[dict[str, object]]:
    """OpenAI function-calling tool definitions."""
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": doc,
                "parameters": {
                    "type": "object",
                    "properties": {k: {"type": v} for k, v in props.items()},
                    "required": list(props),
                },
            },
        }
        for name, doc, props in specs
    ]


# Tools a developer's own agent offers; routers' coding apps send their own set.
_DEV_TOOLS = (
    ("get_weather", "Current weather for a city", {"city": "string"}),
    ("search_docs", "Search the product documentation", {"query": "string"}),
    ("create_ticket", "Open a support ticket", {"title": "string", "body": "string"}),
)


# Every population keeps signing people up: this share of its accounts is days old when the window
# opens (a new student, a new customer's first integration), so a brand-new account is no evidence
# on its own. Without them the risk model learned that it was (a university account 1.2 days old
# with a steady rhythm reached throttle on bench seed 9).
NEW_ACCOUNT_SHARE = 0.03
NEW_ACCOUNT_DAYS = (0.05, 3.0)


def _created_before(ctx: Ctx, min_days: float, max_days: float) -> float:
    days = float(ctx.rng.uniform(min_days, max_days))
    if ctx.signups.random() < NEW_ACCOUNT_SHARE:
        days = float(ctx.signups.uniform(*NEW_ACCOUNT_DAYS))
    return ctx.start - days * DAY


def _volume(ctx: Ctx, log_mean: float, sigma: float) -> int:
    return max(1, int(ctx.rng.lognormal(log_mean, sigma)))


def casual(ctx: Ctx, n_accounts: float = 1500) -> Generated:
    """People chatting through apps and scripts: few requests, daily rhythm of their own time zone."""
    pairs = sharegpt_pairs()
    accounts, out = [], []
    for _ in range(ctx.n(n_accounts)):
        cc = infra.country_choice(ctx)
        tz, mails = infra.COUNTRIES[cc]
        paid = ctx.rng.random() < 0.3
        acct = infra.make_account(
            ctx,
            created_at=_created_before(ctx, 1, 700),
            email_domain=ctx.pick(mails),
            country=cc,
            account_type="paid" if paid else "free",
            verified=bool(ctx.rng.random() < 0.6),
            population="casual",
        )
        accounts.append(acct)
        ranges = infra.residential_ranges(cc)
        ips = [ctx.pick(ranges).address(ctx.rng) for _ in range(int(ctx.rng.integers(1, 4)))]
        ua = infra.client_agent(ctx, browser_share=0.35)
        params = chat_params(ctx, stream_share=0.7)
        mix = {"gpt-4o-mini": 5, "gpt-4o": 4, "o3-mini": 1}
        for t in session_times(ctx, _volume(ctx, 1.6, 0.9), tz):
            pair = ctx.pick(pairs)
            out.append(
                Exchange(
                    float(t),
                    acct,
                    ctx.pick(ips),
                    ua,
                    choose_model(ctx, t, mix),
                    pair.prompt,
                    pair.response,
                    params=params,
                )
            )
    return accounts, out


def developers(ctx: Ctx, n_accounts: float = 300) -> Generated:
    """Developers building on the API: office hours, code questions, SDK clients, some tool calling."""
    pairs, code = sharegpt_pairs(), sharegpt_code_pairs()
    accounts, out = [], []
    for _ in range(ctx.n(n_accounts)):
        cc = infra.country_choice(ctx)
        tz, mails = infra.COUNTRIES[cc]
        acct = infra.make_account(
            ctx,
            created_at=_created_before(ctx, 5, 900),
            email_domain=ctx.pick(mails),
            country=cc,
            account_type="paid",
            verified=bool(ctx.rng.random() < 0.85),
            population="developer",
        )
        accounts.append(acct)
        home = ctx.pick(infra.residential_ranges(cc)).address(ctx.rng)
        server = ctx.pick(infra.hosting_ranges()).address(ctx.rng)
        ua = infra.sdk_agent(ctx)
        params = chat_params(ctx)
        if ctx.rng.random() < 0.15:
            params["tools"] = tool_schemas(_DEV_TOOLS)
        mix = {"gpt-4o": 5, "gpt-4o-mini": 3, "o3-mini": 2}
        for t in session_times(ctx, _volume(ctx, 3.2, 0.8), tz, _WORKDAY):
            pair = ctx.pick(code if ctx.rng.random() < 0.6 else pairs)
            ip = server if ctx.rng.random() < 0.4 else home
            out.append(
                Exchange(
                    float(t),
                    acct,
                    ip,
                    ua,
                    choose_model(ctx, t, mix, 0.3),
                    pair.prompt,
                    pair.response,
                    params=params,
                )
            )
    return accounts, out


_ENTERPRISES = (
    ("contoso.com", "US", "Amazon AWS"),
    ("fabrikam.de", "DE", "Microsoft Azure"),
    ("northwind.co.jp", "JP", "Google Cloud"),
)


def enterprise_apps(ctx: Ctx, volume: float = 1500) -> Generated:
    """Company apps behind one key: fixed system prompt, templated RAG prompts, many end users."""
    pairs = sharegpt_pairs()
    accounts, out = [], []
    for i, (domain, cc, cloud) in enumerate(_ENTERPRISES):
        acct = infra.make_account(
            ctx,
            created_at=_created_before(ctx, 200, 800),
            email_domain=domain,
            country=cc,
            account_type="enterprise",
            verified=True,
            population="enterprise_app",
        )
        acct.org_id, acct.team_id = f"org-{ctx.hex(6)}", f"team-{ctx.hex(6)}"
        accounts.append(acct)
        ips = [ctx.pick(infra.hosting_ranges(cloud)).address(ctx.rng) for _ in range(3)]
        users = [f"emp-{ctx.hex(5)}" for _ in range(int(ctx.rng.integers(200, 800)))]
        system, template = templates.ENTERPRISE_SYSTEMS[i], templates.ENTERPRISE_RAG[i]
        params = {"temperature": 0.2, "max_tokens": 800, "stream": True}
        tz = infra.COUNTRIES[cc][0]
        for t in rhythm_times(ctx, ctx.n(volume), tz, _WORKDAY, weekend=0.15):
            q, doc = ctx.pick(pairs), ctx.pick(pairs)
            user = template.format(doc=doc.response[:1500], question=q.prompt[:500])
            out.append(
                Exchange(
                    float(t),
                    acct,
                    ctx.pick(ips),
                    "OpenAI/Python 1.51.0",
                    "gpt-4o-mini",
                    user,
                    q.response,
                    system=system,
                    params=params,
                    end_user=ctx.pick(users),
                )
            )
    return accounts, out


def eval_runners(ctx: Ctx, runs: float = 3.5) -> Generated:
    """Benchmark harnesses sweeping CHAMP or HumanEval with one fixed template: distillation's legit twin."""
    champ, code = champ_problems(), humaneval_problems()
    labs = (
        ("evals.example-lab.ai", "US", "Google Cloud"),
        ("ml.uni-benchmarks.org", "GB", "Amazon AWS"),
        ("aieval.cn", "CN", "Alibaba Cloud"),
    )
    accounts, out = [], []
    for domain, cc, cloud in labs:
        acct = infra.make_account(
            ctx,
            created_at=_created_before(ctx, 60, 500),
            email_domain=domain,
            country=cc,
            account_type=ctx.pick(("partner", "enterprise")),
            verified=True,
            population="eval_runner",
        )
        acct.capability = "benchmark_item"
        accounts.append(acct)
        ip = ctx.pick(infra.hosting_ranges(cloud)).address(ctx.rng)
        ua = ctx.pick(("python-httpx/0.27.0", "OpenAI/Python 1.54.4"))
        n_runs = max(1, int(ctx.rng.poisson(runs * ctx.scale)))
        for _ in range(n_runs):
            t0 = float(ctx.rng.uniform(ctx.start, ctx.end - DAY / 4))
            model = choose_model(ctx, t0, {"gpt-4o": 1, "gpt-4o-mini": 1, "o3-mini": 1}, adopt_new=0.5)
            params = {"temperature": 0.0, "max_tokens": 2048, "stream": False, "n": 1}
            math = ctx.rng.random() < 0.6
            items: list[tuple[str, str, str | None]] = (
                [
                    (templates.EVAL_MATH.format(problem=p.text), p.model_answer, templates.EVAL_MATH_SYSTEM)
                    for p in champ
                ]
                if math
                else [
                    (templates.EVAL_CODE.format(code=c.prompt), f"```python\n{c.prompt}{c.solution}```", None)
                    for c in code
                ]
            )
            # a harness with a fixed concurrency: one item every ~0.3-1 s, in dataset order
            t = t0
            for user, response, system in items:
                t += float(ctx.rng.exponential(0.6))
                out.append(Exchange(t, acct, ip, ua, model, user, response, system=system, params=params))
    return accounts, out


def university_nat(ctx: Ctx, n_accounts: float = 40) -> Generated:
    """Students behind a campus NAT: dozens of accounts on a handful of addresses, homework included."""
    pairs, champ = sharegpt_pairs(), champ_problems()
    nat = ctx.pick(tuple(r for r in infra.university_ranges() if r.country == "CN"))
    net = ipaddress.ip_network(f"{nat.address(ctx.rng)}/24", strict=False)  # the campus NAT pool
    ips = [str(net[int(i)]) for i in ctx.rng.choice(np.arange(1, 255), size=3, replace=False)]
    tz = infra.COUNTRIES["CN"][0]
    accounts, out = [], []
    for _ in range(ctx.n(n_accounts)):
        acct = infra.make_account(
            ctx,
            created_at=_created_before(ctx, 1, 400),
            email_domain="mails.tsinghua.edu.cn",
            country="CN",
            account_type="free",
            verified=bool(ctx.rng.random() < 0.3),
            population="university_nat",
        )
        accounts.append(acct)
        ua = infra.client_agent(ctx, browser_share=0.5)
        params = chat_params(ctx)
        for t in session_times(ctx, _volume(ctx, 2.7, 0.7), tz):
            if ctx.rng.random() < 0.2:
                p = ctx.pick(champ)
                user, response = p.text, p.model_answer
            else:
                pair = ctx.pick(pairs)
                user, response = pair.prompt, pair.response
            model = choose_model(ctx, t, {"gpt-4o-mini": 3, "o3-mini": 1, "gpt-4o": 1})
            out.append(Exchange(float(t), acct, ctx.pick(ips), ua, model, user, response, params=params))
    return accounts, out


# Apps that send traffic through a router, as (X-Title, HTTP-Referer); coding apps offer tools.
_ROUTER_APPS = (
    ("SillyTavern", "https://sillytavern.app", False),
    ("Open WebUI", "https://openwebui.com", False),
    ("LibreChat", "https://librechat.ai", False),
    ("Cline", "https://cline.bot", True),
    ("Roo Code", "https://roocode.com", True),
    ("Novelcrafter", "https://www.novelcrafter.com", False),
)


def router(ctx: Ctx, volume: float = 4000) -> Generated:
    """A legitimate router reselling access: many end users, app attribution headers, forwarded IPs."""
    pairs, code = sharegpt_pairs(), sharegpt_code_pairs()
    acct = infra.make_account(
        ctx,
        created_at=_created_before(ctx, 300, 700),
        email_domain="openrouter.ai",
        country="US",
        account_type="partner",
        verified=True,
        population="router",
    )
    acct.org_id = f"org-{ctx.hex(6)}"
    servers = [ctx.pick(infra.hosting_ranges("Amazon AWS")).address(ctx.rng) for _ in range(4)]
    users = []
    for _ in range(ctx.n(1500)):
        cc = infra.country_choice(ctx)
        users.append(
            (
                f"u-{ctx.hex(6)}",
                ctx.pick(infra.residential_ranges(cc)).address(ctx.rng),
                ctx.pick(_ROUTER_APPS),
            )
        )
    coding_tools = tool_schemas(templates.AGENTIC_TOOLS[:4])
    out = []
    for t in rhythm_times(ctx, ctx.n(volume), -5, weekend=0.9):
        uid, uip, (title, referer, coding) = ctx.pick(users)
        pair = ctx.pick(code if coding else pairs)
        params: dict[str, object] = {"temperature": 0.7, "max_tokens": 4096, "stream": True}
        if coding:
            params["tools"] = coding_tools
        headers = {"x-forwarded-for": uip, "x-title": title, "http-referer": referer}
        model = choose_model(ctx, t, {"gpt-4o": 3, "gpt-4o-mini": 2, "o3-mini": 1}, 0.25)
        out.append(
            Exchange(
                float(t),
                acct,
                ctx.pick(servers),
                "OpenAI/JS 4.73.1",
                model,
                pair.prompt,
                pair.response,
                params=params,
                end_user=uid,
                headers=headers,
            )
        )
    return [acct], out


POPULATIONS: dict[str, Callable[[Ctx], Generated]] = {
    "casual": casual,
    "developer": developers,
    "enterprise_app": enterprise_apps,
    "eval_runner": eval_runners,
    "university_nat": university_nat,
    "router": router,
}
