"""Template fingerprint: prompts stamped from one wrapper share an id, whatever fills its slots.

A distillation campaign sends one wrapper ("Solve step by step, then show your full reasoning:
{problem}") filled with thousands of items, from many accounts. The fingerprint masks what varies
between fills (code blocks, URLs, e-mails, maths, quoted spans, numbers, proper nouns), keeps the
head and tail of what is left (wrappers sit around the item, the item sits in the middle), and
takes the MinHash minimum over word-trigram shingles there: fills of one wrapper share it as often
as they share shingles, and unrelated prompts rarely share a trigram near both ends.

Hashing is seeded MurmurHash3 (x64, the first 64 bits, as `mmh3.hash64`; compiled) plus a
multiply-shift permutation with fixed constants (64-bit), so an id is the same on every engine,
machine and run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numba
import numpy as np
import pyarrow as pa

from distillguard.signals.base import DistinctCache, per_distinct, prompt_of, prompt_text

SEED = 20260401
WINDOW = 16  # tokens kept from each end of the masked prompt
SHINGLE = 3  # words per shingle

_SLOT = "\x00"
_EDGE_CHARS = 600
_DIGITS = tuple("0123456789")
# (pattern, characters one of which any match contains): a pattern is skipped, at no change in
# output, on text without them, which is most text for the costlier ones (URLs, e-mails, quotes).
# `\d` also matches the other scripts' digits, so numbers are only skipped on ASCII text. Each
# pattern begins with a character rather than a look-behind, which lets the regex engine skip ahead
# to where that character occurs (the look-behind follows it, at the same place).
_MASKS: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    (re.compile(p, re.S), needles)
    for p, needles in (
        (r"```.*?(```|$)", ("`",)),  # fenced code, possibly cut off
        (r"`[^`\n]+`", ("`",)),
        (r"\$\$.*?\$\$|\\\[.*?\\\]|\\\(.*?\\\)|\$[^$\n]{1,200}\$", ("$", "\\")),  # LaTeX maths
        (r"\b(?:https?://|www\.)\S+", ("http", "www.")),
        (r"\b[\w.+-]+@[\w-]+\.[\w.-]+", ("@",)),
        (
            r"\"[^\"\n]{1,300}\"|“[^”]{1,300}”|«[^»]{1,300}»|„[^“”]{1,300}[“”]|「[^」]{1,300}」|『[^』]{1,300}』",
            ('"', "“", "«", "„", "「", "『"),
        ),
        (r"'(?<![\w']')[^'\n]{1,300}'(?!\w)", ("'",)),  # not after a letter or quote: not "it's"
        # [-+]?\d+...: a sign or digit, then the look-around that makes it a number's first character
        (r"[-+\d](?:(?<=\d)|(?=\d))\d*(?:[.,:/]\d+)*%?", _DIGITS),
        (r"[A-Z](?<=[a-z,;] [A-Z])[\w-]+", ()),  # capitalised word inside a sentence: a name or title
        (r"[=+*/^<>≤≥∑∫√π]+", tuple("=+*/^<>≤≥∑∫√π")),  # operators left between masked maths
    )
]
_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]|[^\W\d_]+|\x00+")
# One multiply-shift permutation: the id is the minimum shingle under it. One row, not a band of
# several, because a one-sided wrapper shares only part of its window with another fill: P(same id)
# is the Jaccard similarity itself rather than its power (measured in tests/signals/test_template.py).
_PERM_XOR = np.uint64(0x2545F4914F6CDD1D)
_PERM_MULT = np.uint64(0x9E3779B97F4A7C15)


def _masked(text: str) -> str:
    """`text` lower-cased, with every slot fill replaced by the placeholder."""
    ascii_text = text.isascii()
    for pattern, needles in _MASKS:
        if needles is _DIGITS and not ascii_text:
            needles = ()
        if not needles or any(n in text for n in needles):
            text = pattern.sub(_SLOT, text)
    return text.lower()


def _tokens(found: list[str]) -> list[str]:
    """Tokens as found, each run of placeholders made one placeholder token."""
    return [t if t[0] != _SLOT else _SLOT for t in found]


def mask_slots(text: str) -> list[str]:
    """Lower-cased word tokens of `text` with every slot fill collapsed to one placeholder token."""
    return _tokens(_TOKEN.findall(_masked(text)))


def _ends(tokens: list[str]) -> list[str]:
    return tokens[:WINDOW] + tokens[-WINDOW:] if len(tokens) > 2 * WINDOW else tokens


def window_tokens(text: str) -> list[str]:
    """`mask_slots(text)` cut to its first and last WINDOW tokens when it has more than twice that.

    Long text is tokenised at its ends only. The tail scan starts just past a space: no token holds
    one, so from there it finds what the whole scan finds (an arbitrary start could split a letter
    run, which may swallow the CJK characters after it).
    """
    low = _masked(text)
    if len(low) > 40 * WINDOW:
        head: list[str] = []
        for match in _TOKEN.finditer(low):
            head.append(match.group())
            if len(head) == WINDOW:
                start = low.rfind(" ", match.end(), len(low) - 20 * WINDOW) + 1
                tail = _TOKEN.findall(low, start) if start > match.end() else []
                if len(tail) >= WINDOW:
                    return _tokens(head) + _tokens(tail[-WINDOW:])
                break
    return _ends(_tokens(_TOKEN.findall(low)))


_C1 = np.uint64(0x87C37B91114253D5)
_C2 = np.uint64(0x4CF5AD432745937F)


@numba.njit(cache=True, nogil=True)
def _rotl64(x: np.uint64, r: int) -> np.uint64:  # pragma: no cover - compiled
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@numba.njit(cache=True, nogil=True)
def _fmix64(k: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xFF51AFD7ED558CCD)
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xC4CEB9FE1A85EC53)
    return k ^ (k >> np.uint64(33))


@numba.njit(cache=True, nogil=True)
def murmur3_x64_64(buf: np.ndarray, start: int, length: int, seed: int) -> np.uint64:  # pragma: no cover
    """The first 64 bits of MurmurHash3_x64_128 of `buf[start:start + length]` (what
    `mmh3.hash64(..., signed=False)[0]` gives), in wrapping unsigned 64-bit arithmetic."""
    h1 = np.uint64(seed)
    h2 = np.uint64(seed)
    blocks = length // 16
    for b in range(blocks):
        p = start + 16 * b
        k1 = np.uint64(0)
        k2 = np.uint64(0)
        for j in range(7, -1, -1):
            k1 = (k1 << np.uint64(8)) | np.uint64(buf[p + j])
            k2 = (k2 << np.uint64(8)) | np.uint64(buf[p + 8 + j])
        h1 ^= _rotl64(k1 * _C1, 31) * _C2
        h1 = (_rotl64(h1, 27) + h2) * np.uint64(5) + np.uint64(0x52DCE729)
        h2 ^= _rotl64(k2 * _C2, 33) * _C1
        h2 = (_rotl64(h2, 31) + h1) * np.uint64(5) + np.uint64(0x38495AB5)
    p = start + 16 * blocks
    rest = length & 15
    k1 = np.uint64(0)
    k2 = np.uint64(0)
    for j in range(rest - 1, 7, -1):
        k2 = (k2 << np.uint64(8)) | np.uint64(buf[p + j])
    for j in range(min(rest, 8) - 1, -1, -1):
        k1 = (k1 << np.uint64(8)) | np.uint64(buf[p + j])
    if rest > 8:
        h2 ^= _rotl64(k2 * _C2, 33) * _C1
    if rest > 0:
        h1 ^= _rotl64(k1 * _C1, 31) * _C2
    h1 ^= np.uint64(length)
    h2 ^= np.uint64(length)
    h1 += h2
    h2 += h1
    return _fmix64(h1) + _fmix64(h2)


@numba.njit(cache=True, nogil=True)
def _min_shingle(buf: np.ndarray, seed: int, shingle: int) -> np.uint64:  # pragma: no cover - compiled
    """The minimum, under the fixed permutation, of the hashes of every run of `shingle` tokens in
    `buf`, the UTF-8 bytes of the tokens joined by single spaces (no token holds a space, so each
    run is one contiguous slice); with fewer tokens, the hash of all of them (or of nothing)."""
    starts = np.empty(len(buf) // 2 + 1, dtype=np.int64)
    n = 0
    for p in range(len(buf)):
        if p == 0 or buf[p - 1] == 32:
            starts[n] = p
            n += 1
    if len(buf) == 0 or n < shingle:
        return (murmur3_x64_64(buf, 0, len(buf), seed) ^ _PERM_XOR) * _PERM_MULT
    low = np.uint64(0xFFFFFFFFFFFFFFFF)
    for i in range(n - shingle + 1):
        end = starts[i + shingle] - 1 if i + shingle < n else len(buf)
        h = (murmur3_x64_64(buf, starts[i], end - starts[i], seed) ^ _PERM_XOR) * _PERM_MULT
        if h < low:
            low = h
    return low


def template_ids(texts: list[str | None]) -> list[str | None]:
    """Template id per text (None for None): the minimum shingle hash under one fixed permutation."""
    return [None if text is None else _template_id(text) for text in texts]


def _template_id(text: str) -> str:
    if len(text) > 2 * _EDGE_CHARS:  # only the ends reach the window; skip masking a long middle
        text = f"{text[:_EDGE_CHARS]} {_SLOT} {text[-_EDGE_CHARS:]}"
    # One compiled call hashes every shingle (mmh3 from Python cost about a microsecond a shingle).
    joined = " ".join(window_tokens(text)).encode("utf-8", "surrogatepass")
    return f"{int(_min_shingle(np.frombuffer(joined, dtype=np.uint8), SEED, SHINGLE)):016x}"


_TEMPLATE_IDS = DistinctCache(template_ids)


class TemplateSignal:
    """Signal: system + user prompt -> template_id (null without text)."""

    name = "template"
    columns = pa.schema([("template_id", pa.string())])

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        column = per_distinct(prompt_text(batch, with_system=True), _TEMPLATE_IDS, pa.string())
        return pa.RecordBatch.from_arrays([column], schema=self.columns)

    def row(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return {"template_id": _TEMPLATE_IDS.one(prompt_of(event, with_system=True))}
