import ipaddress

import numpy as np
import pyarrow as pa

from distillguard.enrich.email import is_disposable, is_free_mail
from distillguard.enrich.ip import IpEnricher, _prefix, _tables, lookup_ips
from distillguard.enrich.user_agent import ua_family
from distillguard.schema import rows_to_batch


def test_ip_kinds_asn_and_prefixes():
    ips = ["52.95.110.1", "185.220.101.1", "24.0.0.1", "2a00:1450:4001:80b::200e", "10.0.0.1", "junk", None]
    got = lookup_ips(ips)
    assert got["ip_kind"] == ["hosting", "tor", "residential", "hosting", "unknown", "unknown", None]
    assert got["asn"][:4] == [16509, 60729, 7922, 15169]
    assert "Comcast" in got["asn_org"][2]
    assert got["ip_prefix"][:4] == [
        "52.95.110.0/24",
        "185.220.101.0/24",
        "24.0.0.0/24",
        "2a00:1450:4001::/48",
    ]
    assert got["asn"][4:] == [None, None, None]


def test_one_address_is_enriched_as_in_a_batch():
    # The gateway looks up one address at a time (a bisection), a scan thousands (numpy): both must
    # give the same rows, at range edges too, and the prefix must be the one ip_network spells.
    rng = np.random.default_rng(5)
    t = _tables()
    edges = [
        int(v) + d for r in (t.kind_v4, t.asn_v4) for v in r.starts[:: len(r.starts) // 300] for d in (-1, 0)
    ]
    edges += [
        int(v) + d for r in (t.kind_v4, t.asn_v4) for v in r.ends[:: len(r.ends) // 300] for d in (0, 1)
    ]
    v4 = [str(ipaddress.IPv4Address(int(v) % 2**32)) for v in rng.integers(0, 2**32, 1500)]
    v4 += [str(ipaddress.IPv4Address(v % 2**32)) for v in edges]
    v6_edges = [int(v) for r in (t.kind_v6, t.asn_v6) for v in r.starts[:: max(1, len(r.starts) // 200)]]
    v6 = [str(ipaddress.IPv6Address((k << 64) | int(rng.integers(0, 2**62)))) for k in v6_edges]
    ips = v4 + v6 + ["::ffff:52.95.110.1", "10.1.2.3", "nonsense", None]
    batch = lookup_ips(ips)
    for i in range(0, len(ips), 97):
        one = lookup_ips([ips[i]])
        assert {k: v[0] for k, v in one.items()} == {k: v[i] for k, v in batch.items()}, ips[i]
    assert sum(k not in (None, "unknown") for k in batch["ip_kind"]) > 500
    for ip in v4[:300] + v6[:300]:
        addr = ipaddress.ip_address(ip)
        bits = 24 if addr.version == 4 else 48
        assert _prefix(addr) == str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


def test_ip_enricher_keeps_rows_aligned():
    ips = ["24.0.0.1", None, "52.95.110.1", "24.0.0.1"]
    batch = rows_to_batch({"client_ip": ip} for ip in ips)
    out = IpEnricher().transform(batch)
    assert out.schema == IpEnricher.columns
    assert out.column("ip_kind").to_pylist() == ["residential", None, "hosting", "residential"]
    assert out.column("asn").type == pa.int64()


def test_user_agent_families():
    cases = {
        "OpenAI/Python 1.54.4": "openai-python",
        "Anthropic/Python 0.39.0": "anthropic-python",
        "OpenAI/JS 4.71.1": "node-sdk",
        "curl/8.5.0": "curl",
        "python-requests/2.32.3": "python-requests",
        "python-httpx/0.27.2": "httpx",
        "litellm/1.52.0 OpenAI/Python 1.54.4": "litellm",
        "langchain-openai/0.2 OpenAI/Python 1.54.4": "langchain",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36": "browser",
        "Go-http-client/2.0": "other",
    }
    assert {ua: ua_family(ua) for ua in cases} == cases
    assert ua_family(None) is None


def test_email_domains():
    assert is_disposable("mailinator.com") and is_disposable("inbox.mailinator.com")
    assert is_disposable("someone@guerrillamail.com")
    assert not is_disposable("gmail.com") and not is_disposable("openai.com")
    assert is_free_mail("QQ.com") and not is_free_mail("mailinator.com")
