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
