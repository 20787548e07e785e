import pyarrow as pa

from distillguard.enrich.email import is_disposable, is_free_mail
from distillguard.enrich.ip import IpEnricher, lookup_ips
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
