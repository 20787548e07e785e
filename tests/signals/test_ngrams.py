"""The compiled word table against scikit-learn's own analyzer, MurmurHash3 and `str.split`."""

from __future__ import annotations

import sys
import threading

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.utils import murmurhash3_32

from distillguard.signals.capability import VECTORIZER, vectorizer
from distillguard.signals.word_table import WordTable, space_bytes

_WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())


def _reference(word: str) -> list[int]:
    # char_wb n-grams of one word in the vectorizer's order (it lower-cases first; the word table's
    # words come lower-cased already).
    grams = vectorizer().build_analyzer()(word)
    n_features = int(VECTORIZER["n_features"])
    return [abs(murmurhash3_32(g.encode("utf-8", "surrogatepass"), 0)) % n_features for g in grams]


def _rows(table: WordTable, words: list[str]) -> list[list[int]]:
    """Each distinct word's row of the table, in the order they were added (first seen)."""
    table.projections([" ".join(words)], np.zeros((int(table._params[3]), 1)))
    indptr, indices = table._indptr, table._indices
    return [indices[indptr[w] : indptr[w + 1]].tolist() for w in range(len(table))]


def test_columns_equal_sklearn_for_every_width_and_length() -> None:
    # One to eleven characters (short words yield fewer n-gram sizes), and characters of one to four
    # UTF-8 bytes, so that keys end on every remainder of the hash's 4-byte blocks.
    alphabet = ["a", "z", "é", "ß", "σ", "中", "日", "😀", "𝔘", "9", "_"]
    rng = np.random.default_rng(7)
    words = ["".join(rng.choice(alphabet, size=k)) for k in range(1, 12) for _ in range(30)]
    words += ["x", "ab", "İstanbul".lower(), "ς"]
    distinct = list(dict.fromkeys(words))
    got = _rows(WordTable(VECTORIZER["ngram_range"], VECTORIZER["n_features"]), words)
    assert got == [_reference(w) for w in distinct]


def test_a_lone_surrogate_hashes_as_its_three_bytes() -> None:
    # JSON can spell a lone surrogate; the word table hashes it as surrogatepass encodes it.
    word = "ab\ud800c"
    padded = f" {word} ".encode("utf-8", "surrogatepass")
    assert len(padded) == 8
    bounds = [0, 1, 2, 3, 6, 7, 8]  # where " ", "a", "b", the surrogate (3 bytes), "c", " " start
    want = [abs(murmurhash3_32(padded[bounds[i] : bounds[i + 2]], 0)) % 2**18 for i in range(5)]
    assert _rows(WordTable((2, 2), 2**18), [word]) == [want]


def test_whitespace_is_what_str_split_splits_on() -> None:
    for c in map(chr, range(sys.maxunicode + 1)):
        if 0xD800 <= ord(c) <= 0xDFFF:
            continue
        raw = np.frombuffer(f"{c}x".encode(), dtype=np.uint8)
        assert (space_bytes(raw, 0) > 0) == c.isspace(), hex(ord(c))
    # Words split between, around and across runs of every kind of whitespace, and ones that hold
    # the bytes of a whitespace character's tail (U+2080 is E2 82 80; U+3001 is E3 80 81).
    rng = np.random.default_rng(3)
    alphabet = list(_WHITESPACE) + list("ab é中😀\u2080\u3001\u1681")
    texts = ["".join(rng.choice(alphabet, size=k)) for k in range(0, 40) for _ in range(40)]
    table = WordTable(VECTORIZER["ngram_range"], VECTORIZER["n_features"])
    weights = np.random.default_rng(4).normal(size=(int(VECTORIZER["n_features"]), 2))
    counts = HashingVectorizer(**VECTORIZER, norm=None).transform(texts)  # it splits with str.split
    totals, norms = table.projections(texts, weights)
    assert np.array_equal(norms, np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1)).ravel()))
    np.testing.assert_allclose(totals, counts @ weights, rtol=1e-12, atol=1e-12)
    assert len(table) == len({w for t in texts for w in t.split()})


def test_the_table_clears_at_its_limit_and_stays_exact() -> None:
    table = WordTable(VECTORIZER["ngram_range"], VECTORIZER["n_features"], limit=50)
    texts = [" ".join(f"w{i}x{j}" for j in range(i % 7 + 1)) for i in range(120)]
    weights = np.random.default_rng(6).normal(size=(int(VECTORIZER["n_features"]), 3))
    counts = HashingVectorizer(**VECTORIZER, norm=None).transform(texts)
    totals, norms = table.projections(texts, weights)
    assert len(table) <= 50
    assert np.array_equal(norms, np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1)).ravel()))
    np.testing.assert_allclose(totals, counts @ weights, rtol=1e-12, atol=1e-12)


def test_threads_sharing_a_table_get_the_vectorizer_rows() -> None:
    # The decision service scores prompts from a thread pool, and the compiled loop runs without the
    # GIL: threads sharing one small table (cleared and grown under them) must still get exact rows.
    rng = np.random.default_rng(8)
    alphabet = list("abcdefghij é中")
    texts = [
        " ".join("".join(rng.choice(alphabet, size=int(rng.integers(1, 9)))) for _ in range(30))
        for _ in range(400)
    ]
    weights = np.random.default_rng(9).normal(size=(int(VECTORIZER["n_features"]), 2))
    counts = HashingVectorizer(**VECTORIZER, norm=None).transform(texts)
    want_totals = counts @ weights
    want_norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1)).ravel())
    table = WordTable(VECTORIZER["ngram_range"], VECTORIZER["n_features"], limit=3000)
    got: dict[int, tuple[np.ndarray, float]] = {}

    def work(offset: int) -> None:
        for i in range(offset, len(texts), 4):
            got[i] = table.projection(texts[i], weights)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i][1] for i in range(len(texts))] == want_norms.tolist()
    np.testing.assert_allclose([got[i][0] for i in range(len(texts))], want_totals, rtol=1e-12, atol=1e-12)
