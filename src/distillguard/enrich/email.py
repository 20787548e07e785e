"""Sign-up e-mail domain facts: disposable (throwaway) and free-mail providers.

Disposable domains come from PyPI `disposable-email-domains` (MIT). A sub-domain of a listed
domain counts too, since throwaway services hand out sub-domains freely.
"""

from __future__ import annotations

from disposable_email_domains import blocklist

# Large consumer mail providers: a free address is weak evidence alone, but common on farmed accounts.
FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
        "yahoo.com", "ymail.com", "aol.com", "icloud.com", "me.com", "mac.com", "proton.me",
        "protonmail.com", "pm.me", "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com",
        "yandex.ru", "yandex.com", "mail.ru", "bk.ru", "inbox.ru", "list.ru", "rambler.ru",
        "qq.com", "163.com", "126.com", "yeah.net", "sina.com", "sohu.com", "aliyun.com",
        "naver.com", "daum.net", "hanmail.net", "zoho.com", "tutanota.com", "tuta.io",
        "fastmail.com", "hey.com", "orange.fr", "free.fr", "laposte.net", "libero.it",
        "t-online.de", "seznam.cz", "wp.pl", "o2.pl", "interia.pl", "rediffmail.com",
    }
)  # fmt: skip


def _normalize(domain: str) -> str:
    return domain.strip().lower().rstrip(".").rpartition("@")[2]


def _suffixes(domain: str) -> list[str]:
    parts = domain.split(".")
    return [".".join(parts[i:]) for i in range(len(parts) - 1)]


def is_disposable(domain: str) -> bool:
    """True when the domain (or an address at it) belongs to a throwaway mail service."""
    return any(s in blocklist for s in _suffixes(_normalize(domain)))


def is_free_mail(domain: str) -> bool:
    """True for large consumer mail providers (gmail.com, qq.com, ...)."""
    return _normalize(domain) in FREE_MAIL_DOMAINS
