"""Template fingerprint: prompts stamped from one wrapper share an id, whatever fills its slots.

A distillation campaign sends one wrapper ("Solve step by step, then show your full reasoning:
{problem}") filled with thousands of items, from many accounts. The fingerprint masks what varies
between fills (code blocks, URLs, e-mails, maths, quoted spans, numbers, proper nouns), keeps the
head and tail of what is left (wrappers sit around the item, the item sits in the middle), and
takes the MinHash minimum over word-trigram shingles there: fills of one wrapper share it as often
as they share shingles, and unrelated prompts rarely share a trigram near both ends.

Hashing is seeded mmh3 plus a multiply-shift permutation with fixed constants (64-bit), so an id is
the same on every engine, machine and run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import mmh3
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
_PERM_XOR = 0x2545F4914F6CDD1D
_PERM_MULT = 0x9E3779B97F4A7C15
_U64 = (1 << 64) - 1


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


def _shingle_hashes(text: str) -> list[int]:
    if len(text) > 2 * _EDGE_CHARS:  # only the ends reach the window; skip masking a long middle
        text = f"{text[:_EDGE_CHARS]} {_SLOT} {text[-_EDGE_CHARS:]}"
    tokens = window_tokens(text)
    n = max(len(tokens) - SHINGLE + 1, 1)
    # A repeated shingle is hashed again rather than deduplicated: the minimum is the same.
    return [mmh3.hash64(" ".join(tokens[i : i + SHINGLE]), SEED, signed=False)[0] for i in range(n)]


def template_ids(texts: list[str | None]) -> list[str | None]:
    """Template id per text (None for None): the minimum shingle hash under one fixed permutation."""
    return [None if text is None else _template_id(text) for text in texts]


def _template_id(text: str) -> str:
    # Python integers, wrapped to 64 bits: per text, numpy's set-up cost as much as the hashing.
    low = min(((h ^ _PERM_XOR) * _PERM_MULT) & _U64 for h in _shingle_hashes(text))
    return f"{low:016x}"


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
