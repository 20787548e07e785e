"""Infrastructure the simulated clients come from: real IP ranges, user agents and e-mail domains.

Hosting, VPN and Tor ranges come from the `iporigin` package; residential and university ranges
from the IP-to-ASN extract in data/isp_ranges.csv; browser user agents from the `user-agents`
sample in data/browser_user_agents.tsv (see data/README.md for sources and licences).
"""

from __future__ import annotations

import csv
import ipaddress
from dataclasses import dataclass
from functools import cache

import numpy as np

from distillguard.sim.core import Account, Ctx
from distillguard.sim.text import DATA_DIR


@dataclass(frozen=True)
class IpRange:
    start: int
    end: int
    provider: str
    kind: str  # hosting, vpn, tor, residential, university
    country: str = ""

    @property
    def prefix24(self) -> str:
        """The /24 this range starts in, as CIDR text (what intel indicators name)."""
        return str(ipaddress.ip_network(f"{ipaddress.IPv4Address(self.start)}/24", strict=False))

    def address(self, rng: np.random.Generator) -> str:
        return str(ipaddress.IPv4Address(int(rng.integers(self.start, self.end + 1))))


# Providers whose ranges are plausible API clients (crawler and CDN ranges are not).
_HOSTING = (
    "Amazon AWS",
    "Microsoft Azure",
    "Google Cloud",
    "Oracle Cloud",
    "Alibaba Cloud",
    "Tencent Cloud",
    "Huawei Cloud",
    "DigitalOcean",
    "Hetzner",
    "OVHcloud",
    "Linode",
    "Vultr",
    "Contabo",
    "Leaseweb",
)
_ANONYMIZERS = ("ProtonVPN", "Mullvad", "Tor")


@cache
def _iporigin_ranges() -> tuple[IpRange, ...]:
    from iporigin.core import dataset

    data = dataset()
    wanted = set(_HOSTING) | set(_ANONYMIZERS)
    out = []
    for start, end, label in zip(data.v4_starts, data.v4_ends, data.v4_labels, strict=True):
        provider, kind = data.labels[label]
        if provider in wanted and end - start >= 15:  # single hosts are too small to draw from
            out.append(IpRange(int(start), int(end), provider, kind))
    return tuple(out)


@cache
def hosting_ranges(provider: str | None = None) -> tuple[IpRange, ...]:
    return tuple(
        r for r in _iporigin_ranges() if r.kind == "hosting" and (provider is None or r.provider == provider)
    )


@cache
def anonymizer_ranges() -> tuple[IpRange, ...]:
    return tuple(r for r in _iporigin_ranges() if r.kind in ("vpn", "tor"))


@cache
def _isp_ranges() -> tuple[IpRange, ...]:
    with (DATA_DIR / "isp_ranges.csv").open(encoding="utf-8") as fh:
        return tuple(
            IpRange(
                int(ipaddress.IPv4Address(r["start"])),
                int(ipaddress.IPv4Address(r["end"])),
                f"AS{r['asn']} {r['org']}",
                r["kind"],
                r["country"],
            )
            for r in csv.DictReader(fh)
        )


@cache
def residential_ranges(country: str | None = None) -> tuple[IpRange, ...]:
    rows = tuple(r for r in _isp_ranges() if r.kind == "residential")
    return (tuple(r for r in rows if r.country == country) or rows) if country else rows


@cache
def university_ranges() -> tuple[IpRange, ...]:
    return tuple(r for r in _isp_ranges() if r.kind == "university")


# Countries of the residential extract, with a UTC offset (hours) and the webmail people there use.
COUNTRIES: dict[str, tuple[float, tuple[str, ...]]] = {
    "US": (-6, ("gmail.com", "outlook.com", "yahoo.com", "icloud.com")),
    "CA": (-5, ("gmail.com", "outlook.com", "yahoo.ca")),
    "MX": (-6, ("gmail.com", "hotmail.com", "outlook.com")),
    "BR": (-3, ("gmail.com", "hotmail.com", "uol.com.br")),
    "GB": (0, ("gmail.com", "outlook.com", "btinternet.com")),
    "FR": (1, ("gmail.com", "orange.fr", "free.fr")),
    "DE": (1, ("gmail.com", "web.de", "gmx.de")),
    "ES": (1, ("gmail.com", "hotmail.es")),
    "IT": (1, ("gmail.com", "libero.it")),
    "NL": (1, ("gmail.com", "ziggo.nl")),
    "PL": (1, ("gmail.com", "wp.pl", "o2.pl")),
    "UA": (2, ("gmail.com", "ukr.net")),
    "EG": (2, ("gmail.com", "yahoo.com")),
    "TR": (3, ("gmail.com", "hotmail.com")),
    "RU": (3, ("yandex.ru", "mail.ru", "gmail.com")),
    "PK": (5, ("gmail.com", "yahoo.com")),
    "IN": (5.5, ("gmail.com", "yahoo.co.in", "rediffmail.com")),
    "VN": (7, ("gmail.com",)),
    "ID": (7, ("gmail.com", "yahoo.co.id")),
    "CN": (8, ("qq.com", "163.com", "126.com", "gmail.com")),
    "HK": (8, ("gmail.com", "yahoo.com.hk")),
    "TW": (8, ("gmail.com", "yahoo.com.tw")),
    "PH": (8, ("gmail.com", "yahoo.com")),
    "KR": (9, ("naver.com", "gmail.com", "daum.net")),
    "JP": (9, ("gmail.com", "yahoo.co.jp", "docomo.ne.jp")),
    "AU": (10, ("gmail.com", "outlook.com", "bigpond.com")),
}
# Rough share of a global provider's consumer traffic per country.
_COUNTRY_WEIGHT = {"US": 24, "IN": 9, "GB": 5, "DE": 5, "BR": 5, "FR": 4, "JP": 4, "CA": 3, "KR": 3}


def country_choice(ctx: Ctx) -> str:
    names = list(COUNTRIES)
    w = np.array([_COUNTRY_WEIGHT.get(c, 1.5) for c in names])
    return names[int(ctx.rng.choice(len(names), p=w / w.sum()))]


@cache
def disposable_domains() -> tuple[str, ...]:
    from disposable_email_domains import blocklist

    return tuple(sorted(d for d in blocklist if d.count(".") == 1))


# API clients: what gateway logs mostly hold. (format, weight); {v} is a version drawn per account.
_SDK_AGENTS = (
    ("OpenAI/Python 1.{v}.0", 30),
    ("AsyncOpenAI/Python 1.{v}.0", 14),
    ("OpenAI/JS 4.{v}.1", 10),
    ("python-requests/2.3{d}.0", 8),
    ("python-httpx/0.2{d}.0", 6),
    ("curl/8.{d}.0", 4),
    ("Go-http-client/1.1", 3),
    ("okhttp/4.1{d}.0", 2),
    ("axios/1.{d}.2", 3),
)


@cache
def browser_agents() -> tuple[tuple[str, ...], np.ndarray]:
    rows = (DATA_DIR / "browser_user_agents.tsv").read_text("utf-8").splitlines()[1:]
    weights, agents = zip(*(r.split("\t", 1) for r in rows), strict=True)
    w = np.array([float(x) for x in weights])
    return tuple(agents), w / w.sum()


def sdk_agent(ctx: Ctx) -> str:
    w = np.array([x[1] for x in _SDK_AGENTS], dtype=float)
    fmt = _SDK_AGENTS[int(ctx.rng.choice(len(_SDK_AGENTS), p=w / w.sum()))][0]
    return fmt.format(v=int(ctx.rng.integers(30, 60)), d=int(ctx.rng.integers(0, 10)))


def browser_agent(ctx: Ctx) -> str:
    agents, p = browser_agents()
    return str(agents[int(ctx.rng.choice(len(agents), p=p))])


def client_agent(ctx: Ctx, browser_share: float) -> str:
    return browser_agent(ctx) if ctx.rng.random() < browser_share else sdk_agent(ctx)


def make_account(
    ctx: Ctx,
    *,
    created_at: float,
    email_domain: str,
    country: str,
    account_type: str,
    verified: bool,
    population: str,
    payment_fingerprint: str | None = None,
) -> Account:
    """An account with opaque random ids, so neither id order nor prefix gives its population away."""
    return Account(
        account_id=f"user_{ctx.hex(8)}",
        created_at=created_at,
        email_domain=email_domain,
        payment_fingerprint=payment_fingerprint or f"pf_{ctx.hex(10)}",
        country=country,
        account_type=account_type,
        verified=verified,
        key_hash=ctx.hex(32),
        population=population,
    )
