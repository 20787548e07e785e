import json
import socket

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from distillguard.schema import CAPABILITIES
from distillguard.signals import corpora
from distillguard.signals.capability import (
    MODEL_DIR,
    VECTORIZER,
    CapabilityModel,
    CapabilitySignal,
    classify,
    clip,
    shipped_model,
    vectorizer,
)
from distillguard.signals.train_capability import WRAPPERS
from distillguard.signals.word_table import WordTable


def test_artifact_is_small_plain_and_loads_offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the capability model tried to open a socket")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert (MODEL_DIR / "capability.npz").stat().st_size < 5_000_000
    model = CapabilityModel.load()
    assert model.classes == CAPABILITIES
    proba = model.predict_proba(["Rate this answer from 1 to 10 against the rubric.\nQ: 2+2\nA: 4"])
    assert np.isclose(proba.sum(), 1.0)


def test_recorded_held_out_metrics_meet_the_bar():
    meta = json.loads((MODEL_DIR / "capability.json").read_text())
    metrics = meta["metrics_held_out"]  # wrappers and items the model never saw
    assert metrics["accuracy"] >= 0.6
    assert metrics["f1"]["general"] >= 0.7 and metrics["f1"]["benchmark_item"] >= 0.7
    assert metrics["accuracy_by_language"]["en"]["accuracy"] >= 0.8
    assert len(meta["training_data_sha256"]) == 64


def test_real_prompts(sharegpt):
    # ShareGPT even-indexed conversations: never in training (the trainer takes odd ones).
    unseen = corpora.sharegpt_prompts(parity=0, limit=400)
    general = [r["capability"] for r in classify(unseen)]
    assert general.count("general") / len(general) >= 0.9
    champ = corpora.champ_problems()[1::2]  # held-out half
    bench = [r["capability"] for r in classify(champ)]
    assert bench.count("benchmark_item") / len(bench) >= 0.7


def test_known_wrappers_with_unseen_items_in_every_language():
    items = corpora.champ_problems()[1::2][:20]
    for label, by_lang in WRAPPERS.items():
        for lang, wrappers in by_lang.items():
            got = [r["capability"] for r in classify([wrappers[0].format(x=x, y=items[-1]) for x in items])]
            assert got.count(label) / len(got) >= 0.7, (label, lang, got)


def test_signal_nulls_without_text():
    batch = pa.RecordBatch.from_pydict(
        {
            "user_text": ["Think step by step and show all of your reasoning: what is 17 * 23?", None, "x"],
            "system_prompt": pa.nulls(3, pa.string()),
            "content_present": [True, False, False],
        }
    )
    out = CapabilitySignal().transform(batch).to_pylist()
    assert out[0]["capability"] == "cot_elicitation" and 0 < out[0]["capability_score"] <= 1
    assert out[1] == out[2] == {"capability": None, "capability_score": None}


def _counts(texts: list[str]) -> sp.csr_matrix:
    # The vectorizer's rows before normalisation: whole-number counts of each hashed n-gram.
    return HashingVectorizer(**VECTORIZER, norm=None).transform(texts)


def test_projections_equal_the_vectorizer(sharegpt, items):
    # Real prompts and wrapped items in every language, long pastes (clipped), odd whitespace and
    # case-folding characters; twice, so the second call reads the word table; and a few at a time.
    wrapped = [
        w[0].format(x=x, y=items[0]) for by_lang in WRAPPERS.values() for w in by_lang.values() for x in items
    ]
    texts = (
        sharegpt[:1500]
        + wrapped
        + [" ".join(sharegpt[:40]), "", " ", "İSTANBUL ÇOK\u00a0güzel\u2003ΣΑΣ", "a\n\n\tb"]
        # Four-byte characters: four of them make the longest key (16 bytes, four hash blocks).
        + ["😀😀😀😀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 x😀y ä😀 日本語😀"]
    )
    texts = [clip(t).lower() for t in texts]
    counts = _counts(texts)
    weights = shipped_model()._weights
    want_norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1)).ravel())
    want_totals = counts @ weights
    words = WordTable(VECTORIZER["ngram_range"], VECTORIZER["n_features"])
    for _ in range(2):
        totals, norms = words.projections(texts, weights)
        assert np.array_equal(norms, want_norms)  # whole numbers: exact
        np.testing.assert_allclose(totals, want_totals, rtol=1e-12, atol=1e-12)
    for lo in range(0, len(texts), 37):
        totals, norms = words.projections(texts[lo : lo + 3], weights)
        assert np.array_equal(norms, want_norms[lo : lo + 3])
        np.testing.assert_allclose(totals, want_totals[lo : lo + 3], rtol=1e-12, atol=1e-12)


def test_one_prompt_scores_as_in_a_batch(sharegpt, items):
    # The gateway scores prompts one at a time; a scan scores them in batches. Both as the
    # definition: the vectorizer's rows times the weights, calibrated, softmaxed.
    model = shipped_model()
    texts = sharegpt[:150] + [f"Explain your reasoning step by step: {x}" for x in items[:50]] + ["  ", "?"]
    batch = model.predict_proba(texts)
    logits = (
        vectorizer().transform([clip(t) for t in texts]) @ model._weights + model.intercept
    ) / model.temperature
    want = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(batch, want / want.sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-15)
    single = np.stack([model.predict_proba([t])[0] for t in texts])
    np.testing.assert_allclose(single, batch, rtol=1e-12, atol=1e-15)
    best = [model.best_one(t) for t in texts]  # what `classify` gives one prompt
    assert [c for c, _ in best] == [model.classes[k] for k in batch.argmax(axis=1)]
    np.testing.assert_allclose([p for _, p in best], batch.max(axis=1), rtol=1e-12)


def test_words_hashed_one_by_one_equal_the_vectorizer(sharegpt, items):
    # A prompt at the gateway brings a few new words at a time, a batch brings thousands; the word
    # table must hold the vectorizer's rows either way, in any script.
    texts = [
        clip(t).lower() for t in sharegpt[:200] + items[:40] + ["İstanbul çok güzel ΣΑΣ 日本語の文", "a b"]
    ]
    words = WordTable(VECTORIZER["ngram_range"], VECTORIZER["n_features"])
    weights = shipped_model()._weights
    counts = _counts(texts)
    for i, text in enumerate(texts):
        total, norm = words.projection(text, weights)
        assert norm == np.sqrt(counts[i].multiply(counts[i]).sum()), i
        np.testing.assert_allclose(total, (counts[i] @ weights).ravel(), rtol=1e-12, atol=1e-12)
    assert len(words) > 1000  # most words came in small groups
