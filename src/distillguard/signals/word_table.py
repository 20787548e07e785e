"""The distinct words of prompts and their hashed char_wb n-gram columns, held in compiled arrays.

char_wb n-grams never cross whitespace, so a text's n-gram counts are the sum of its words' counts,
and words repeat far more than texts do: each distinct word is hashed once and kept as one row of a
CSR table (its n-gram columns, as `HashingVectorizer(analyzer="char_wb")` computes them).

The whole path from a text's UTF-8 bytes to its word ids is one compiled loop (numba): split on
whitespace as `str.split()` does, look each word up in an open-addressing table keyed by its
MurmurHash3 and checked byte for byte, and hash the n-grams of the words not seen before. At the
gateway, where prompts come one at a time, the same call also sums the words' products with the
model's weights; a scan's batch takes the same call for every text. Splitting in Python and
looking words up in a dictionary made one Python object and one or two cache misses per word, and
three compiled calls a prompt: most of what a novel prompt's capability cost at the gateway.

The table holds at most `limit` words; when a text could take it past that, it is cleared.
"""

from __future__ import annotations

import threading

import numba
import numpy as np

from distillguard.signals.ngrams import add_word_products, murmur3_32, padded_word_ngrams, text_product

# sizes[]: words held, arena bytes used, n-gram entries, words whose products are computed
_WORDS, _USED, _NNZ, _PROJECTED = range(4)
# params[]: most words held, smallest and largest n-gram, number of columns
_LIMIT, _LOW, _HIGH, _N_FEATURES = range(4)
# meta[word]: where its padded bytes start in the arena, its length (unpadded), its hash
_START, _LENGTH, _HASH = range(3)


@numba.njit(cache=True, nogil=True)
def space_bytes(buf: np.ndarray, p: int) -> int:  # pragma: no cover - compiled
    """The UTF-8 length of the character at `buf[p]` when it is whitespace as `str.isspace` has it
    (what `str.split()` splits on), else 0 (a continuation byte is never whitespace)."""
    b = buf[p]
    if b == 32 or 9 <= b <= 13 or 28 <= b <= 31:
        return 1
    if b == 0xC2:
        return 2 if buf[p + 1] == 0x85 or buf[p + 1] == 0xA0 else 0  # U+0085, U+00A0
    if b == 0xE1:
        return 3 if buf[p + 1] == 0x9A and buf[p + 2] == 0x80 else 0  # U+1680
    if b == 0xE2:
        c, d = buf[p + 1], buf[p + 2]
        if c == 0x80 and (0x80 <= d <= 0x8A or d == 0xA8 or d == 0xA9 or d == 0xAF):
            return 3  # U+2000-U+200A, U+2028, U+2029, U+202F
        return 3 if c == 0x81 and d == 0x9F else 0  # U+205F
    if b == 0xE3:
        return 3 if buf[p + 1] == 0x80 and buf[p + 2] == 0x80 else 0  # U+3000
    return 0


@numba.njit(cache=True, nogil=True)
def _add_text(
    buf: np.ndarray, lo: int, hi: int, ids: np.ndarray, bounds: np.ndarray, table: tuple[np.ndarray, ...]
) -> int:  # pragma: no cover - compiled
    """Split the text `buf[lo:hi]` into words and write each word's id to `ids`, adding unseen words;
    returns the number of words, or -1 (adding nothing) when its worst case (every other byte a new
    word) might not fit in the arrays or under the limit. `bounds` is scratch space of at least
    `hi - lo + 3` entries; `table` is `WordTable._arrays()`."""
    slots, meta, arena, indptr, indices, sizes, params = table
    limit, low, high, n_features = params[_LIMIT], params[_LOW], params[_HIGH], params[_N_FEATURES]
    words, used, nnz = sizes[_WORDS], sizes[_USED], sizes[_NNZ]
    most = (hi - lo) // 2 + 1
    padded = hi - lo + 2 * most
    if (
        (words > 0 and words + most > limit)
        or 2 * (words + most) > len(slots)
        or words + most > len(meta)
        or words + most >= len(indptr)
        or used + padded > len(arena)
        or nnz + (high - low + 1) * padded > len(indices)
    ):
        return -1
    mask = len(slots) - 1
    count = 0
    p = lo
    while p < hi:
        k = space_bytes(buf, p)
        if k:
            p += k
            continue
        s = p
        while p < hi and space_bytes(buf, p) == 0:
            p += 1
        length = p - s
        h = murmur3_32(buf, s, length) & 0xFFFFFFFF
        slot = h & mask
        while True:
            w = slots[slot]
            if w == -1:
                break
            if meta[w, _HASH] == h and meta[w, _LENGTH] == length:
                at = meta[w, _START] + 1
                same = True
                for i in range(length):
                    if arena[at + i] != buf[s + i]:
                        same = False
                        break
                if same:
                    break
            slot = (slot + 1) & mask
        if w == -1:  # a new word: its padded bytes go to the arena, its n-grams to the table
            w = words
            meta[w, _START], meta[w, _LENGTH], meta[w, _HASH] = used, length, h
            arena[used] = 32
            arena[used + 1 : used + 1 + length] = buf[s:p]
            arena[used + 1 + length] = 32
            end = used + length + 2
            nnz = padded_word_ngrams(arena, used, end, low, high, n_features, bounds, indices, nnz)
            indptr[w + 1] = nnz
            used += length + 2
            words += 1
            slots[slot] = w
        ids[count] = w
        count += 1
    sizes[_WORDS], sizes[_USED], sizes[_NNZ] = words, used, nnz
    return count


@numba.njit(cache=True, nogil=True)
def _project_texts(
    buf: np.ndarray,
    ends: np.ndarray,
    first: int,
    table: tuple[np.ndarray, ...],
    weights: np.ndarray,
    products: np.ndarray,
    totals: np.ndarray,
    norms: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """For texts `first`.. of `buf` (text t ends at `ends[t]`): the sum of each text's word products
    with `weights` (`totals[t]`) and the L2 norm of its n-gram counts (`norms[t]`), adding unseen
    words. Stops before a text that needs room first; returns the next text."""
    indptr, indices, sizes = table[3], table[4], table[5]
    longest = 0
    for t in range(first, len(ends)):
        longest = max(longest, ends[t] - (ends[t - 1] if t > 0 else 0))
    # Scratch for every text, allocated once: word ids, and character bounds of a padded word.
    ids = np.empty(longest // 2 + 1, dtype=np.int64)
    bounds = np.empty(longest + 3, dtype=np.int64)
    t = first
    while t < len(ends):
        lo = ends[t - 1] if t > 0 else 0
        if sizes[_WORDS] + (ends[t] - lo) // 2 + 1 > len(products):
            break
        n = _add_text(buf, lo, ends[t], ids, bounds, table)
        if n < 0:
            break
        add_word_products(sizes[_PROJECTED], sizes[_WORDS], indptr, indices, weights, products)
        sizes[_PROJECTED] = sizes[_WORDS]
        total, norm = text_product(ids[:n], indptr, indices, products)
        totals[t] = total
        norms[t] = norm
        t += 1
    return t


def _utf8(text: str) -> bytes:
    # surrogatepass: JSON can spell a lone surrogate, which the vectorizer hashes as its 3 bytes.
    return text.encode("utf-8", "surrogatepass")


class WordTable:
    """Distinct words and their hashed char_wb n-gram columns (`ngram_range`, `n_features`), up to
    `limit` words, and each word's product with a model's weights. `projections` gives texts'
    products and count norms, `projection` one text's. Texts come lower-cased and clipped already."""

    def __init__(self, ngram_range: tuple[int, int], n_features: int, limit: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._params = np.array([limit, ngram_range[0], ngram_range[1], n_features], dtype=np.int64)
        self._sizes = np.zeros(4, dtype=np.int64)
        self._slots = np.full(1 << max(10, (2 * limit - 1).bit_length()), -1, dtype=np.int64)
        self._meta = np.zeros((1024, 3), dtype=np.int64)
        self._indptr = np.zeros(1025, dtype=np.int64)
        self._arena = np.zeros(8192, dtype=np.uint8)
        self._indices = np.zeros(65536, dtype=np.int32)
        # Each word's counts times a model's weights, for the first `sizes[_PROJECTED]` words.
        self._weights: np.ndarray | None = None
        self._products = np.zeros((0, 0))

    def __len__(self) -> int:
        return int(self._sizes[_WORDS])

    def _arrays(self) -> tuple[np.ndarray, ...]:
        # One argument for the compiled loops (the arrays are replaced when they grow).
        return (self._slots, self._meta, self._arena, self._indptr, self._indices, self._sizes, self._params)

    def clear(self) -> None:
        self._slots.fill(-1)
        self._sizes[:] = 0

    def _make_room(self, text_bytes: int) -> None:
        """Clear or grow so that a text of `text_bytes` fits whatever it holds."""
        most = text_bytes // 2 + 1
        if len(self) and len(self) + most > self._params[_LIMIT]:
            self.clear()
        words, used, nnz = (int(v) for v in self._sizes[:3])
        padded = text_bytes + 2 * most
        low, high = int(self._params[_LOW]), int(self._params[_HIGH])
        if 2 * (words + most) > len(self._slots):  # a text longer than twice the limit
            self.clear()
            words = used = nnz = 0
            self._slots = np.full(1 << (2 * most - 1).bit_length(), -1, dtype=np.int64)
        self._meta = _grown(self._meta, words + most, words)
        self._indptr = _grown(self._indptr, words + most + 1, words + 1)
        self._arena = _grown(self._arena, used + padded, used)
        self._indices = _grown(self._indices, nnz + (high - low + 1) * padded, nnz)
        if len(self._products) < words + most:
            self._products = _grown(self._products, words + most, int(self._sizes[_PROJECTED]))

    def projections(self, texts: list[str], weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each text's hashed n-gram counts times `weights` (n_features x classes), and the counts'
        L2 norms: the vectorizer's rows times the weights are their quotients.

        Counts add over words, so a text's product is the sum of its words' products, each computed
        once per word and kept: a text costs a gather of a few hundred small rows instead of one row
        of the 2**18-row weights per n-gram (rarely in cache at the gateway), and a batch no sparse
        matrix at all.
        """
        encoded = [_utf8(t) for t in texts]
        lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
        return self._project(np.frombuffer(b"".join(encoded), dtype=np.uint8), np.cumsum(lengths), weights)

    def projection(self, text: str, weights: np.ndarray) -> tuple[np.ndarray, float]:
        """`projections([text], weights)` for one text: its product row and its norm."""
        buf = np.frombuffer(_utf8(text), dtype=np.uint8)
        totals, norms = self._project(buf, np.full(1, len(buf), dtype=np.int64), weights)
        return totals[0], float(norms[0])

    def _project(
        self, buf: np.ndarray, ends: np.ndarray, weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        totals = np.zeros((len(ends), weights.shape[1]))
        norms = np.zeros(len(ends))
        # One caller at a time: the service's threads share the table, and the compiled loop that
        # adds words runs without the GIL.
        with self._lock:
            if self._weights is not weights:  # products of other weights: recompute them all
                self._weights, self._sizes[_PROJECTED] = weights, 0
                self._products = np.zeros((len(self._meta), weights.shape[1]))
            first = 0
            while first < len(ends):
                first = _project_texts(
                    buf, ends, first, self._arrays(), weights, self._products, totals, norms
                )
                if first < len(ends):
                    self._make_room(int(ends[first] - (ends[first - 1] if first else 0)))
        return totals, norms


def _grown(a: np.ndarray, need: int, keep: int) -> np.ndarray:
    """`a` when it holds `need` rows, else a copy at least twice as long with its first `keep` rows."""
    if len(a) >= need:
        return a
    out = np.zeros((max(need, 2 * len(a)), *a.shape[1:]), dtype=a.dtype)
    out[:keep] = a[:keep]
    return out
