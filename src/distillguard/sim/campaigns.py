"""Distillation campaigns: each strategy is run by an actor with its own infrastructure.

Attackers use the same user agents, clouds and residential ISPs as benign clients; what gives
them away is how these are combined (bursts of new accounts, shared payment instruments, slot-
filled templates, synchronized timing), never a single artifact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from distillguard.sim import infra, templates
from distillguard.sim.core import DAY, Account, Ctx, Exchange
from distillguard.sim.populations import (
    NEW_MODEL,
    NEW_MODEL_RELEASE_DAY,
    Generated,
    rhythm_times,
    session_times,
    tool_schemas,
)
from distillguard.sim.text import (
    CodeProblem,
    MathProblem,
    champ_problems,
    humaneval_problems,
    reasoning_questions,
    sensitive_questions,
    sharegpt_pairs,
)


@dataclass
class Actor:
    """A lab running campaigns, and the infrastructure it rents or buys."""

    name: str
    tz: float
    servers: list[str]
    proxies: list[str]
    domains: list[str]
    agents: list[str]
    hosting: list[infra.IpRange]
    accounts: list[Account] = field(default_factory=list)


# name, operator time zone, clouds rented, residential-proxy exit countries, share of disposable mail
_ACTORS = (
    ("tarsier", 8.0, ("Alibaba Cloud", "Tencent Cloud", "DigitalOcean"), ("US", "KR", "JP", "VN"), 0.8),
    ("vesper", 8.0, ("Huawei Cloud", "Amazon AWS", "Oracle Cloud"), ("US", "GB", "DE", "HK"), 0.3),
    ("kestrel", 3.0, ("Hetzner", "OVHcloud", "Vultr"), ("RU", "UA", "TR", "DE", "PL"), 0.5),
    ("marlin", 8.0, ("Linode", "Contabo", "Amazon AWS"), ("US", "CA", "GB", "AU", "TW"), 0.0),
)


def make_actors(ctx: Ctx) -> dict[str, Actor]:
    actors = {}
    for name, tz, clouds, exits, disposable in _ACTORS:
        hosting = [ctx.pick(infra.hosting_ranges(c)) for c in clouds for _ in range(2)]
        servers = [ctx.pick(hosting).address(ctx.rng) for _ in range(12)]
        proxies = [ctx.pick(infra.residential_ranges(ctx.pick(exits))).address(ctx.rng) for _ in range(60)]
        n_disposable = round(6 * disposable)
        domains = (
            list(ctx.rng.choice(infra.disposable_domains(), size=n_disposable, replace=False))
            if n_disposable
            else []
        )
        domains += [ctx.pick(infra.COUNTRIES[ctx.pick(exits)][1]) for _ in range(6 - n_disposable)]
        agents = [infra.sdk_agent(ctx) for _ in range(3)]
        actors[name] = Actor(name, tz, servers, proxies, [str(d) for d in domains], agents, hosting)
    return actors


def _accounts(
    ctx: Ctx,
    actor: Actor,
    n: int,
    strategy: str,
    capability: str,
    created: np.ndarray,
    fp_group: int,
    aged: bool = False,
) -> list[Account]:
    """Campaign accounts; every `fp_group` consecutive accounts share one payment instrument."""
    out = []
    fingerprint = ""
    for i in range(n):
        if i % fp_group == 0:
            fingerprint = f"pf_{ctx.hex(10)}"
        cc = ctx.pick(list(infra.COUNTRIES) if aged else ["US", "GB", "CA", "JP", "KR"])
        acct = infra.make_account(
            ctx,
            created_at=float(created[i]),
            email_domain=ctx.pick(actor.domains),
            country=cc,
            account_type="paid" if aged or ctx.rng.random() < 0.4 else "free",
            verified=bool(ctx.rng.random() < (0.6 if aged else 0.1)),
            population=strategy,
            payment_fingerprint=fingerprint,
        )
        acct.label, acct.actor, acct.capability = "distiller", actor.name, capability
        acct.campaign_id = f"{actor.name}-{strategy}"
        out.append(acct)
    actor.accounts += out
    return out


def _bursts(ctx: Ctx, n: int, n_bursts: int, first_day: float, last_day: float) -> np.ndarray:
    """Creation times of n accounts registered in a few bursts, each within half an hour."""
    centres = ctx.start + ctx.rng.uniform(first_day, last_day, size=n_bursts) * DAY
    return np.sort(centres[ctx.rng.integers(0, n_bursts, size=n)] + ctx.rng.uniform(0, 1800, size=n))


def _balanced(ctx: Ctx, acct: Account, n: int, end: float) -> np.ndarray:
    """Load-balanced timing: evenly spaced requests from first use to `end`, lightly jittered."""
    begin = max(ctx.start, acct.created_at + 600.0)
    step = (end - begin) / n
    return begin + step * (np.arange(n) + 0.5) + ctx.rng.normal(0, step * 0.05, size=n)


# --- answers the model gives to the attackers' requests -------------------------------------------


def _cot_answer(p: MathProblem) -> str:
    steps = "\n".join(f"Step {i}: {s}" for i, s in enumerate(p.steps, 1))
    return f"{steps}\n\n{p.model_answer}\n\nTherefore, the final answer is {p.answer}."


def _reasoning_answer(question: str, answer: str) -> str:
    words = question.rstrip("?").split()
    number = next((w for w in words if w.isdigit()), None)
    if number is not None:
        n = int(number)
        divisor = next((d for d in range(2, int(n**0.5) + 1) if n % d == 0), None)
        if divisor is None:
            return (
                f"To decide whether {n} is prime, test divisibility by every prime up to sqrt({n}) ≈ "
                f"{int(n**0.5)}. None of them divides {n} evenly, so {n} has no divisor but 1 and itself."
                f"\n\nAnswer: {answer}, {n} is a prime number."
            )
        return f"{n} = {divisor} × {n // divisor}, so it is not prime.\n\nAnswer: {answer}."
    return (
        "Going through the senators who represented that state and checking each one's education, none of "
        f"them attended the institution named in the question.\n\nAnswer: {answer}."
    )


def _harvest_item(ctx: Ctx) -> tuple[str, str]:
    """(problem text, answer text) drawn from the maths, code and reasoning sets."""
    r = ctx.rng.random()
    if r < 0.5:
        p: MathProblem = ctx.pick(champ_problems())
        return p.text, _cot_answer(p)
    if r < 0.75:
        q, a = ctx.pick(reasoning_questions())
        return q, _reasoning_answer(q, a)
    c: CodeProblem = ctx.pick(humaneval_problems())
    return f"Complete this function:\n{c.prompt}", f"```python\n{c.prompt}{c.solution}```"


def _params(ctx: Ctx, **extra: object) -> dict[str, object]:
    params: dict[str, object] = {
        "temperature": float(ctx.pick((0.6, 0.7, 1.0))),
        "max_tokens": int(ctx.pick((4096, 8192, 16384))),
        "stream": bool(ctx.rng.random() < 0.3),
    }
    if ctx.rng.random() < 0.25:  # soft labels for distillation when the API offers them
        params.update(logprobs=True, top_logprobs=5)
    params.update(extra)
    return params


# --- strategies ------------------------------------------------------------------------------------


def hydra(ctx: Ctx, actor: Actor) -> Generated:
    """Hundreds of throwaway accounts made in bursts, rotating cloud and proxy IPs, balanced load."""
    n = ctx.n(200)
    accts = _accounts(ctx, actor, n, "hydra", "cot_elicitation", _bursts(ctx, n, 4, -3, 3), fp_group=10)
    out = []
    for acct in accts:
        params = _params(ctx)
        for t in _balanced(ctx, acct, int(ctx.rng.integers(15, 35)), ctx.end - 1):
            problem, answer = _harvest_item(ctx)
            user = ctx.pick(templates.HARVEST).format(problem=problem)
            ip = ctx.pick(actor.servers) if ctx.rng.random() < 0.5 else ctx.pick(actor.proxies)
            model = "o3-mini" if ctx.rng.random() < 0.5 else "gpt-4o"
            out.append(
                Exchange(
                    float(t),
                    acct,
                    ip,
                    ctx.pick(actor.agents),
                    model,
                    user,
                    answer,
                    params=params,
                    fail_rate=0.06,
                )
            )
    return accts, out


def cot_extraction(ctx: Ctx, actor: Actor) -> Generated:
    """A completed answer in, the reasoning that 'leads to it' out: reasoning traces for training."""
    n = ctx.n(60)
    accts = _accounts(
        ctx, actor, n, "cot_extraction", "cot_elicitation", _bursts(ctx, n, 6, -30, 1), fp_group=3
    )
    out = []
    for acct in accts:
        ips = [ctx.pick(actor.servers) for _ in range(2)]
        params = _params(ctx)
        agent = ctx.pick(actor.agents)
        for t in rhythm_times(ctx, int(ctx.rng.integers(25, 55)), actor.tz, weekend=1.0):
            p: MathProblem = ctx.pick(champ_problems())
            user = ctx.pick(templates.COT_EXTRACTION).format(problem=p.text, answer=p.answer)
            model = "o3-mini" if ctx.rng.random() < 0.6 else "gpt-4o"
            out.append(
                Exchange(
                    float(t),
                    acct,
                    ctx.pick(ips),
                    agent,
                    model,
                    user,
                    _cot_answer(p),
                    params=params,
                    reasoning=1.5,
                    fail_rate=0.02,
                )
            )
    return accts, out


def agentic_coding(ctx: Ctx, actor: Actor) -> Generated:
    """Coding-agent runs over a task set, tools offered in every request, to harvest agent traces."""
    n = ctx.n(40)
    accts = _accounts(
        ctx, actor, n, "agentic_coding", "agentic_coding", _bursts(ctx, n, 3, -20, 0), fp_group=4
    )
    tools = tool_schemas(templates.AGENTIC_TOOLS[: int(ctx.rng.integers(3, 6))])
    out = []
    for acct in accts:
        ip = ctx.pick(actor.servers)
        system = ctx.pick(templates.AGENTIC_SYSTEM)
        params = _params(ctx, tools=tools, stream=True)
        for t in rhythm_times(ctx, int(ctx.rng.integers(25, 55)), actor.tz, weekend=1.0):
            c: CodeProblem = ctx.pick(humaneval_problems())
            task = ctx.pick(templates.AGENTIC_TASK).format(
                code=c.prompt, entry=c.entry_point, n=int(ctx.rng.integers(1000, 9999))
            )
            answer = ctx.pick(templates.AGENTIC_ANSWER).format(
                entry=c.entry_point, code=c.prompt + c.solution
            )
            out.append(
                Exchange(
                    float(t),
                    acct,
                    ip,
                    ctx.pick(actor.agents),
                    "gpt-4o",
                    task,
                    answer,
                    system=system,
                    params=params,
                )
            )
    return accts, out


def _grade(ctx: Ctx) -> str:
    score, why = int(ctx.rng.integers(1, 11)), ctx.pick(templates.RUBRIC_RATIONALES)
    return f'{{"score": {score}, "rationale": "{why}"}}'


def rubric_farm(ctx: Ctx, actor: Actor) -> Generated:
    """The model used as an RL reward model: grade (prompt, response) pairs against a rubric, JSON out."""
    n = ctx.n(50)
    accts = _accounts(ctx, actor, n, "rubric_farm", "rubric_grading", _bursts(ctx, n, 5, -10, 2), fp_group=6)
    pairs = sharegpt_pairs()
    out = []
    vpn = [r.address(ctx.rng) for r in ctx.rng.choice(np.array(infra.anonymizer_ranges(), dtype=object), 10)]
    for acct in accts:
        params = _params(ctx, temperature=0.0, max_tokens=256, stream=False)
        agent = ctx.pick(actor.agents)
        for t in _balanced(ctx, acct, int(ctx.rng.integers(35, 65)), ctx.end - 1):
            pair = ctx.pick(pairs)
            user = ctx.pick(templates.RUBRIC_GRADING).format(
                rubric=ctx.pick(templates.RUBRICS), prompt=pair.prompt[:1500], response=pair.response[:3000]
            )
            ip = ctx.pick(vpn) if ctx.rng.random() < 0.2 else ctx.pick(actor.proxies)
            out.append(
                Exchange(
                    float(t), acct, ip, agent, "gpt-4o-mini", user, _grade(ctx), params=params, fail_rate=0.04
                )
            )
    return accts, out


def censorship_rewrite(ctx: Ctx, actor: Actor) -> Generated:
    """Sensitive questions answered 'safely' for an audience or a regime: data for a compliant model."""
    n = ctx.n(40)
    accts = _accounts(
        ctx, actor, n, "censorship_rewrite", "censorship_rewrite", _bursts(ctx, n, 3, -15, 1), fp_group=5
    )
    questions = sensitive_questions()
    out = []
    for acct in accts:
        ips = [ctx.pick(actor.servers), ctx.pick(actor.proxies)]
        params = _params(ctx)
        agent = ctx.pick(actor.agents)
        for t in rhythm_times(ctx, int(ctx.rng.integers(25, 55)), actor.tz):
            q = ctx.pick(questions)
            draft = ctx.pick(templates.SAFE_ANSWERS).format(topic=q)
            user = ctx.pick(templates.CENSORSHIP_REWRITE).format(
                audience=ctx.pick(templates.AUDIENCES),
                regime=ctx.pick(templates.REGIMES),
                question=q,
                draft=draft,
            )
            answer = ctx.pick(templates.SAFE_ANSWERS).format(topic=q)
            out.append(Exchange(float(t), acct, ctx.pick(ips), agent, "gpt-4o", user, answer, params=params))
    return accts, out


def low_and_slow(ctx: Ctx, actor: Actor) -> Generated:
    """Aged accounts, few requests each, half of them ordinary chat as cover, residential proxies."""
    n = ctx.n(80)
    created = ctx.start - ctx.rng.uniform(60, 600, size=n) * DAY
    accts = _accounts(ctx, actor, n, "low_and_slow", "cot_elicitation", created, fp_group=1, aged=True)
    pairs = sharegpt_pairs()
    out = []
    for acct in accts:
        ip = ctx.pick(actor.proxies)
        ua = infra.client_agent(ctx, browser_share=0.35)
        params = _params(ctx)
        tz = infra.COUNTRIES[acct.country][0]
        for t in session_times(ctx, int(ctx.rng.integers(6, 18)), tz):
            if ctx.rng.random() < 0.5:
                pair = ctx.pick(pairs)
                user, answer = pair.prompt, pair.response
            else:
                p: MathProblem = ctx.pick(champ_problems())
                user = ctx.pick(templates.COT_EXTRACTION).format(problem=p.text, answer=p.answer)
                answer = _cot_answer(p)
            out.append(Exchange(float(t), acct, ip, ua, "o3-mini", user, answer, params=params))
    return accts, out


def reseller(ctx: Ctx, actor: Actor) -> Generated:
    """A reseller whose customers are mostly genuine; a few of its end users are the actor distilling."""
    pairs = sharegpt_pairs()
    acct = infra.make_account(
        ctx,
        # A random age: a fixed one is a constant the risk model learns as "the reseller".
        created_at=ctx.start - float(ctx.rng.uniform(60, 900)) * DAY,
        email_domain="api-relay.io",
        country="HK",
        account_type="reseller",
        verified=True,
        population="reseller",
    )
    acct.label, acct.actor, acct.capability = "distiller", actor.name, "rubric_grading"
    acct.campaign_id = f"{actor.name}-reseller"
    actor.accounts.append(acct)
    servers = [ctx.pick(actor.hosting).address(ctx.rng) for _ in range(3)]
    genuine = [f"cust-{ctx.hex(5)}" for _ in range(ctx.n(600))]
    distillers = [f"cust-{ctx.hex(5)}" for _ in range(max(3, ctx.n(30)))]
    out = []
    for t in rhythm_times(ctx, ctx.n(2000), 8.0, weekend=0.8):
        pair = ctx.pick(pairs)
        out.append(
            Exchange(
                float(t),
                acct,
                ctx.pick(servers),
                "OpenAI/Python 1.40.6",
                "gpt-4o-mini",
                pair.prompt,
                pair.response,
                params={"temperature": 0.7, "max_tokens": 2048, "stream": True},
                end_user=ctx.pick(genuine),
            )
        )
    grade_params = {"temperature": 0.0, "max_tokens": 256, "stream": False}
    for uid in distillers:
        for t in _balanced(ctx, acct, int(ctx.rng.integers(15, 35)), ctx.end - 1):
            pair = ctx.pick(pairs)
            user = ctx.pick(templates.RUBRIC_GRADING).format(
                rubric=ctx.pick(templates.RUBRICS), prompt=pair.prompt[:1500], response=pair.response[:3000]
            )
            out.append(
                Exchange(
                    float(t),
                    acct,
                    ctx.pick(servers),
                    "OpenAI/Python 1.40.6",
                    "gpt-4o-mini",
                    user,
                    _grade(ctx),
                    params=grade_params,
                    end_user=uid,
                    distilling=True,
                )
            )
    return [acct], out


def model_pivot(ctx: Ctx, actor: Actor) -> Generated:
    """A campaign moving half of its traffic to the new model within a day of its release."""
    n = ctx.n(30)
    accts = _accounts(ctx, actor, n, "model_pivot", "benchmark_item", _bursts(ctx, n, 2, -12, -5), fp_group=5)
    release = ctx.start + NEW_MODEL_RELEASE_DAY * DAY
    switch = release + float(ctx.rng.uniform(3, 20)) * 3600.0
    out = []
    for acct in accts:
        params = _params(ctx)
        for t in _balanced(ctx, acct, int(ctx.rng.integers(40, 80)), ctx.end - 1):
            problem, answer = _harvest_item(ctx)
            user = ctx.pick(templates.HARVEST).format(problem=problem)
            model = NEW_MODEL if t >= switch and ctx.rng.random() < 0.5 else "gpt-4o"
            ip = ctx.pick(actor.servers) if ctx.rng.random() < 0.7 else ctx.pick(actor.proxies)
            out.append(
                Exchange(
                    float(t),
                    acct,
                    ip,
                    ctx.pick(actor.agents),
                    model,
                    user,
                    answer,
                    params=params,
                    fail_rate=0.03,
                )
            )
    return accts, out


# strategy -> (actor, generator)
CAMPAIGNS: dict[str, tuple[str, Callable[[Ctx, Actor], Generated]]] = {
    "hydra": ("tarsier", hydra),
    "model_pivot": ("tarsier", model_pivot),
    "cot_extraction": ("vesper", cot_extraction),
    "agentic_coding": ("vesper", agentic_coding),
    "rubric_farm": ("kestrel", rubric_farm),
    "censorship_rewrite": ("kestrel", censorship_rewrite),
    "low_and_slow": ("marlin", low_and_slow),
    "reseller": ("marlin", reseller),
}
