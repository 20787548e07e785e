"""The compiled n-gram hasher against scikit-learn's own analyzer and MurmurHash3."""

from __future__ import annotations

import numpy as np
from sklearn.utils import murmurhash3_32

from distillguard.signals.capability import VECTORIZER, vectorizer
from distillguard.signals.ngrams import ngram_columns


def _reference(words: list[str]) -> tuple[list[int], list[int]]:
    # char_wb n-grams of one word in the vectorizer's order (it lower-cases first; the word table's
    # words come lower-cased already).
    analyze = vectorizer().build_analyzer()
    n_features = int(VECTORIZER["n_features"])
    lengths, cols = [], []
    for word in words:
        grams = analyze(word)
        lengths.append(len(grams))
        cols += [abs(murmurhash3_32(g.encode("utf-8", "surrogatepass"), 0)) % n_features for g in grams]
    return lengths, cols


def test_columns_equal_sklearn_for_every_width_and_length() -> None:
    # One to eleven characters (short words yield fewer n-gram sizes), and characters of one to four
    # UTF-8 bytes, so that keys end on every remainder of the hash's 4-byte blocks.
    alphabet = ["a", "z", "é", "ß", "σ", "中", "日", "😀", "𝔘", "9", "_"]
    rng = np.random.default_rng(7)
    words = ["".join(rng.choice(alphabet, size=k)) for k in range(1, 12) for _ in range(30)]
    words += ["x", "ab", "İstanbul".lower(), "ς"]
    lengths, cols = ngram_columns(words, VECTORIZER["ngram_range"], VECTORIZER["n_features"])
    want_lengths, want_cols = _reference(words)
    assert lengths.tolist() == want_lengths
    assert cols.tolist() == want_cols


def test_a_lone_surrogate_hashes_as_its_three_bytes() -> None:
    # JSON can spell a lone surrogate; the word table hashes it as surrogatepass encodes it.
    word = "ab\ud800c"
    padded = f" {word} ".encode("utf-8", "surrogatepass")
    assert len(padded) == 8
    lengths, cols = ngram_columns([word], (2, 2), 2**18)
    bounds = [0, 1, 2, 3, 6, 7, 8]  # where " ", "a", "b", the surrogate (3 bytes), "c", " " start
    want = [abs(murmurhash3_32(padded[bounds[i] : bounds[i + 2]], 0)) % 2**18 for i in range(5)]
    assert lengths.tolist() == [5] and cols.tolist() == want


def test_no_words() -> None:
    lengths, cols = ngram_columns([], (2, 4), 2**18)
    assert len(lengths) == 0 and len(cols) == 0
