"""Hashed character n-grams of words, as scikit-learn's `HashingVectorizer(analyzer="char_wb")`.

char_wb pads a word with one space each side and takes every n-gram of `low`..`high` characters
that fits (a padded word shorter than n yields none of that length or longer); each n-gram's UTF-8
bytes are hashed with MurmurHash3 (x86, 32-bit, seed 0, signed) and the column is its absolute
value modulo the number of features. Compiled loops (numba) do it in any script, called from the
word table (`word_table`) as it meets new words: hashing n-gram by n-gram in Python cost about 5 µs
a word.
"""

from __future__ import annotations

import numba
import numpy as np

_M32 = 0xFFFFFFFF


@numba.njit(cache=True, nogil=True)
def _rotl(x: int, r: int) -> int:  # pragma: no cover - compiled
    return ((x << r) | (x >> (32 - r))) & _M32


@numba.njit(cache=True, nogil=True)
def murmur3_32(buf: np.ndarray, start: int, length: int) -> int:  # pragma: no cover - compiled
    """MurmurHash3_x86_32 with seed 0 of `buf[start:start + length]`, as a signed 32-bit value.
    (Numba widens 32-bit integers in arithmetic, so the words are held in int64 and masked.)"""
    h = 0
    blocks = length // 4
    for b in range(blocks + 1):
        p = start + 4 * b
        take = 4 if b < blocks else length & 3
        if take == 0:
            break
        k = 0
        for j in range(take - 1, -1, -1):
            k = (k << 8) | int(buf[p + j])
        k = (_rotl((k * 0xCC9E2D51) & _M32, 15) * 0x1B873593) & _M32
        h ^= k
        if take == 4:
            h = (_rotl(h, 13) * 5 + 0xE6546B64) & _M32
    h ^= length
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    h ^= h >> 16
    return h - (1 << 32) if h >= (1 << 31) else h


@numba.njit(cache=True, nogil=True)
def padded_word_ngrams(
    buf: np.ndarray,
    start: int,
    end: int,
    low: int,
    high: int,
    n_features: int,
    bounds: np.ndarray,
    cols: np.ndarray,
    out: int,
) -> int:  # pragma: no cover - compiled
    """Write the columns of the char_wb n-grams of `buf[start:end]`, the UTF-8 bytes of one padded
    word (" word "), to `cols` from `out` on; returns where they end. `bounds` is scratch space of at
    least `end - start + 1` entries."""
    chars = 0
    for p in range(start, end):
        if (buf[p] & 0xC0) != 0x80:  # not a UTF-8 continuation byte: a character starts here
            bounds[chars] = p
            chars += 1
    bounds[chars] = end
    for n in range(low, high + 1):
        if chars < n:
            break
        for s in range(chars - n + 1):
            h = murmur3_32(buf, bounds[s], bounds[s + n] - bounds[s])
            cols[out] = abs(h) % n_features
            out += 1
    return out


@numba.njit(cache=True, nogil=True)
def add_word_products(
    lo: int, hi: int, indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """`out[w] = Σ weights[c]` over the n-gram columns c of each word w in [lo, hi) of a CSR word
    table (every entry counts one)."""
    for w in range(lo, hi):
        out[w] = 0.0  # the row may hold a word of a table since cleared
        for j in range(indptr[w], indptr[w + 1]):
            for k in range(weights.shape[1]):
                out[w, k] += weights[indices[j], k]


@numba.njit(cache=True, nogil=True)
def text_product(
    ids: np.ndarray, indptr: np.ndarray, indices: np.ndarray, products: np.ndarray
) -> tuple[np.ndarray, float]:  # pragma: no cover - compiled
    """For a text given as word ids (repeats included) into a CSR word table: the sum of its words'
    `products` rows and the L2 norm of its n-gram counts (a column's count is its occurrences).

    The counts go in a small open-addressing table keyed by column (columns are hashes already, so
    their low bits spread): each occurrence adds (k + 1)**2 - k**2 = 2k + 1 to the sum of squares.
    Sorting the columns instead was most of a prompt's cost, and a table as wide as the columns
    is out of cache by the next request."""
    total = np.zeros(products.shape[1])
    size = 0
    for i in ids:
        size += indptr[i + 1] - indptr[i]
    slots = 1 << max(4, int(np.ceil(np.log2(2 * size + 1))))
    keys = np.full(slots, -1, dtype=np.int32)
    counts = np.zeros(slots, dtype=np.int64)
    squares = 0
    for i in ids:
        for j in range(indptr[i], indptr[i + 1]):
            c = indices[j]
            s = c & (slots - 1)
            while keys[s] != c and keys[s] != -1:
                s = (s + 1) & (slots - 1)
            keys[s] = c
            squares += 2 * counts[s] + 1
            counts[s] += 1
        for k in range(products.shape[1]):
            total[k] += products[i, k]
    return total, np.sqrt(squares)
