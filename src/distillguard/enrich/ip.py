"""Client IP enrichment: network prefix, autonomous system and the kind of network behind it.

Kinds come from `iporigin` (MIT; published hosting, CDN, VPN and Tor ranges). Autonomous systems
come from a table built from npm `@ip-location-db/asn` (CC BY 4.0: RouteViews, DB-IP.com, NRO;
attribution in data/ASN-LICENSE.txt) and shipped as `data/asn.npz`. Every lookup is a numpy
`searchsorted` over sorted range starts, done once per distinct IP in a batch.

IPv6 ranges are keyed on their upper 64 bits: providers announce /64 or shorter, so the routing
prefix decides the owner. An address in neither table keeps `asn` null and `ip_kind` unknown.
"""

from __future__ import annotations

import bisect
import csv
import ipaddress
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from iporigin.core import dataset as iporigin_dataset

from distillguard.signals.base import DistinctCache, per_distinct

ASN_TABLE = Path(__file__).parent / "data" / "asn.npz"

IP_KINDS: tuple[str, ...] = ("hosting", "vpn", "tor", "proxy", "residential", "unknown")
# iporigin kinds folded onto ours: a CDN edge or a declared crawler is still a machine in a datacenter.
_IPORIGIN_KIND = {"hosting": "hosting", "cdn": "hosting", "bot": "hosting", "vpn": "vpn", "tor": "tor"}
# AS names that declare hosting or anonymising networks, for providers iporigin does not list.
_ORG_WORDS = (
    ("vpn", ("vpn",)),
    ("proxy", ("proxy",)),
    ("hosting", ("hosting", "host ", "cloud", "datacenter", "data center", "server", "vps", "colo")),
)


@dataclass(frozen=True)
class _Ranges:
    """Sorted, non-overlapping [start, end] ranges with one label index each."""

    starts: np.ndarray
    ends: np.ndarray
    labels: np.ndarray

    def find(self, keys: list[int]) -> list[int]:
        """Label index per key, -1 where no range contains it."""
        if len(keys) <= _FEW:  # numpy's set-up per call costs more than a bisection in Python
            return [self._find_one(k) for k in keys]
        arr = np.array(keys, dtype=np.uint64)
        pos = np.searchsorted(self.starts, arr, side="right") - 1
        safe = np.clip(pos, 0, None)
        hit = (pos >= 0) & (arr <= self.ends[safe]) if len(self.starts) else np.zeros(len(arr), bool)
        return np.where(hit, self.labels[safe] if len(self.starts) else -1, -1).tolist()

    def _find_one(self, key: int) -> int:
        pos = bisect.bisect_right(self.starts, key) - 1
        return int(self.labels[pos]) if pos >= 0 and key <= self.ends[pos] else -1


@dataclass(frozen=True)
class _Tables:
    kind_v4: _Ranges
    kind_v6: _Ranges
    kind_labels: tuple[str, ...]
    asn_v4: _Ranges
    asn_v6: _Ranges
    asn_numbers: np.ndarray
    asn_names: tuple[str, ...]


def _v6_key(values: list[int]) -> np.ndarray:
    return np.array([v >> 64 for v in values], dtype=np.uint64)


# Up to this many addresses, ranges are found by bisection in Python (the gateway's one address).
_FEW = 8


@cache
def _tables() -> _Tables:
    data = iporigin_dataset()  # its parallel arrays feed numpy directly
    kinds = tuple(_IPORIGIN_KIND.get(kind, "unknown") for _, kind in data.labels)
    kind_v4 = _Ranges(
        np.array(data.v4_starts, dtype=np.uint64),
        np.array(data.v4_ends, dtype=np.uint64),
        np.array(data.v4_labels, dtype=np.int64),
    )
    kind_v6 = _Ranges(
        _v6_key(data.v6_starts),
        _v6_key(data.v6_ends),
        np.array(data.v6_labels, dtype=np.int64),
    )
    if ASN_TABLE.exists():
        with np.load(ASN_TABLE) as z:
            asn_v4 = _Ranges(z["v4_start"].astype(np.uint64), z["v4_end"].astype(np.uint64), z["v4_asn"])
            asn_v6 = _Ranges(z["v6_start"], z["v6_end"], z["v6_asn"])
            numbers = z["asn_numbers"]
            names = tuple(z["asn_names"].tobytes().decode("utf-8").split("\n"))
    else:  # an install without the table still classifies kinds; asn stays null
        empty = _Ranges(np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.int64))
        asn_v4, asn_v6, numbers, names = empty, empty, np.zeros(0, np.int64), ()
    return _Tables(kind_v4, kind_v6, kinds, asn_v4, asn_v6, numbers, names)


def _org_kind(org: str | None) -> str | None:
    if not org:
        return None
    low = f" {org.lower()} "
    for kind, words in _ORG_WORDS:
        if any(w in low for w in words):
            return kind
    return None


def _parse(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if ip is None:
        return None
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _prefix(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The /24 (IPv4) or /48 (IPv6) network holding `addr`, as `ip_network(..., strict=False)` spells it."""
    if addr.version == 4:
        return f"{ipaddress.IPv4Address(int(addr) & 0xFFFFFF00)}/24"
    return f"{ipaddress.IPv6Address(int(addr) >> 80 << 80)}/48"


def lookup_ips(ips: list[str | None]) -> dict[str, list]:
    """Enrich distinct IP strings: lists `ip_prefix`, `asn`, `asn_org`, `ip_kind`, aligned with `ips`."""
    t = _tables()
    addrs = [_parse(ip) for ip in ips]
    out: dict[str, list] = {
        "ip_prefix": [None if a is None else _prefix(a) for a in addrs],
        "asn": [None] * len(ips),
        "asn_org": [None] * len(ips),
        "ip_kind": [None if ip is None else "unknown" for ip in ips],
    }
    for version, kind_ranges, asn_ranges in ((4, t.kind_v4, t.asn_v4), (6, t.kind_v6, t.asn_v6)):
        rows = [i for i, a in enumerate(addrs) if a is not None and a.version == version and a.is_global]
        if not rows:
            continue
        ints = [int(addrs[i]) for i in rows]  # type: ignore[arg-type]
        keys = ints if version == 4 else [v >> 64 for v in ints]
        for row, k, a in zip(rows, kind_ranges.find(keys), asn_ranges.find(keys), strict=True):
            org = t.asn_names[a] if a >= 0 else None
            if a >= 0:
                out["asn"][row] = int(t.asn_numbers[a])
                out["asn_org"][row] = org
            if k >= 0 and t.kind_labels[k] != "unknown":
                out["ip_kind"][row] = t.kind_labels[k]
            elif a >= 0:
                # A routed address on an eyeball network: residential unless its AS says otherwise.
                out["ip_kind"][row] = _org_kind(org) or "residential"
    return out


def _lookup_rows(ips: list[str | None]) -> list[dict]:
    found = lookup_ips(ips)
    return [dict(zip(found, row, strict=True)) for row in zip(*found.values(), strict=True)]


# Clients keep their addresses across batches and across requests at the gateway.
_IPS = DistinctCache(_lookup_rows)


class IpEnricher:
    """Signal: `client_ip` -> ip_prefix, asn, asn_org, ip_kind (null when the IP is null)."""

    name = "ip"
    columns = pa.schema(
        [("ip_prefix", pa.string()), ("asn", pa.int64()), ("asn_org", pa.string()), ("ip_kind", pa.string())]
    )

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        found = per_distinct(batch.column("client_ip"), _IPS, pa.struct(self.columns))
        return pa.RecordBatch.from_struct_array(found)

    def row(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return dict(_IPS.one(event.get("client_ip")))


def build_asn_table(csv_dir: Path, out: Path = ASN_TABLE) -> None:
    """Pack `asn-ipv4-num.csv` / `asn-ipv6-num.csv` from `@ip-location-db/asn` into `out`.

    Adjacent ranges of one AS are merged; names are stored as one UTF-8 blob (no pickle).
    """
    numbers: dict[int, int] = {}
    names: list[str] = []
    arrays: dict[str, np.ndarray] = {}
    for version in (4, 6):
        starts: list[int] = []
        ends: list[int] = []
        labels: list[int] = []
        with (csv_dir / f"asn-ipv{version}-num.csv").open(newline="", encoding="utf-8") as fh:
            for start_s, end_s, asn_s, org in csv.reader(fh):
                start, end, asn = int(start_s), int(end_s), int(asn_s)
                if version == 6:
                    start, end = start >> 64, end >> 64
                if asn not in numbers:
                    numbers[asn] = len(names)
                    names.append(org.replace("\n", " "))
                label = numbers[asn]
                if labels and labels[-1] == label and start <= ends[-1] + 1:
                    ends[-1] = max(ends[-1], end)
                elif starts and start <= ends[-1]:  # /64 keys of a long prefix: first owner wins
                    continue
                else:
                    starts.append(start)
                    ends.append(end)
                    labels.append(label)
        dtype = np.uint32 if version == 4 else np.uint64
        arrays[f"v{version}_start"] = np.array(starts, dtype=dtype)
        arrays[f"v{version}_end"] = np.array(ends, dtype=dtype)
        arrays[f"v{version}_asn"] = np.array(labels, dtype=np.int32)
    arrays["asn_numbers"] = np.array(list(numbers), dtype=np.int64)
    arrays["asn_names"] = np.frombuffer("\n".join(names).encode("utf-8"), dtype=np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)  # type: ignore[arg-type]


if __name__ == "__main__":
    # python -m distillguard.enrich.ip <unpacked @ip-location-db/asn package dir>
    build_asn_table(Path(sys.argv[1]))
