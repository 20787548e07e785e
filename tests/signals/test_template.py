from collections import Counter

import mmh3
import numpy as np

from distillguard.signals.template import (
    _EDGE_CHARS,
    _MASKS,
    _PERM_MULT,
    _PERM_XOR,
    _SLOT,
    _TOKEN,
    SEED,
    SHINGLE,
    mask_slots,
    murmur3_x64_64,
    template_ids,
    window_tokens,
)

# Wrappers of our own; the item sits before, after or inside them.
WRAPPERS = [
    "Work through this problem step by step and write down your whole reasoning before the answer.\n\n{x}",
    "{x}\n\nLay out every intermediate step of your thinking in detail, then put the final answer in a box.",
    "You are a strict grader. Score the reply below from 1 to 10 against the rubric and justify it.\n\n"
    "Question: {x}\n\nRubric: correctness, clarity, completeness.\nReturn JSON with score and rationale.",
    "Imagine you have already written a correct answer to the task below. Articulate the hidden chain of "
    "thought that led there.\nTask: {x}\nReasoning:",
    "请一步一步地思考下面的问题，并写出完整的推理过程。\n\n{x}\n\n最后给出答案。",
    "Реши задачу и подробно опиши ход своих рассуждений перед ответом:\n{x}",
]


def test_slots_are_masked():
    a = mask_slots('Alice paid $3.50 for "two apples" at https://shop.example/x, mail bob@ex.org')
    b = mask_slots('Alice paid $17 for "a melon" at https://other.example, mail eve@ex.org')
    assert a == b
    assert "apples" not in a and "https" not in a


def test_fills_of_one_wrapper_share_an_id(items):
    shares = []
    for wrapper in WRAPPERS:
        ids = template_ids([wrapper.format(x=x) for x in items])
        shares.append(Counter(ids).most_common(1)[0][1] / len(ids))
    # A wrapper on one side of a long item shares only its half of the window: measured 0.14-0.9.
    assert min(shares) >= 0.1 and sum(shares) / len(shares) >= 0.45, shares


def test_unrelated_prompts_rarely_collide(sharegpt):
    ids = template_ids(sharegpt)
    counts = Counter(ids)
    colliding = sum(1 for i in ids if counts[i] > 1) / len(ids)
    # Measured 0.30, of which 0.12 are prompts identical after masking ("continue", "hi").
    assert colliding < 0.35
    assert counts.most_common(1)[0][1] / len(ids) < 0.03


def test_ids_are_fixed_and_null_safe():
    assert template_ids([None, "Explain the proof of the four colour theorem in simple words please"]) == [
        None,
        template_ids(["Explain the proof of the four colour theorem in simple words please"])[0],
    ]
    assert template_ids(["Summarise this article for a ten year old reader"]) == ["6132f0ad39096e60"]


def test_one_prompt_gets_the_id_a_batch_gives_it(sharegpt, items):
    # The gateway asks for one text at a time, a scan for many.
    texts = sharegpt[:500] + [w.format(x=x) for w in WRAPPERS for x in items[:20]] + ["", "1 + 2"]
    assert template_ids(texts) == [template_ids([t])[0] for t in texts]


def test_skipping_masks_by_their_characters_changes_nothing(sharegpt, items):
    # Each mask is skipped on text lacking all of its characters; applying every mask always must agree.
    extra = [
        "see \"a b\" at https://x.io/p or a@b.co, it's 'ok' $x^2$ ``` code",
        "«q» „r“ 「s」 『t』 \\(y\\)",
    ]
    for text in sharegpt[:1500] + items + extra:
        full = text
        for pattern, _ in _MASKS:
            full = pattern.sub(_SLOT, full)
        want = [t if t[0] != _SLOT else _SLOT for t in _TOKEN.findall(full.lower())]
        assert mask_slots(text) == want


def test_long_text_tokenised_at_its_ends_equals_the_whole_scan(sharegpt, items):
    # Long prompts are tokenised at their ends only; the window must be the whole scan's ends,
    # including where a letter run swallows CJK characters across the tail scan's start.
    from distillguard.signals.template import WINDOW, window_tokens

    long_texts = [" ".join(sharegpt[i : i + 6]) for i in range(0, 600, 6)] + [
        "abc中文def " * 200,
        "中文" * 500 + " x" * 40,
        "word " * 300 + "Σ" + " y" * 5,
        "x" * 5000,
        "ab " * 100 + "中" * 800,
        "Solve: " + " ".join(items[:40]) + " Show every step.",
    ]
    for text in long_texts:
        tokens = mask_slots(text)
        want = tokens[:WINDOW] + tokens[-WINDOW:] if len(tokens) > 2 * WINDOW else tokens
        assert window_tokens(text) == want


def test_masks_led_by_a_character_match_their_look_behind_first_forms(sharegpt):
    # The quote, number and capitalised-word masks are written to start with a character (fast to
    # scan for); they must substitute exactly as the plain forms they replace.
    import re

    plain = {
        6: r"(?<![\w'])'[^'\n]{1,300}'(?!\w)",
        7: r"[-+]?\d+(?:[.,:/]\d+)*%?",
        8: r"(?<=[a-z,;] )[A-Z][\w-]+",
    }
    edge = [
        "'quoted' at start",
        "it's 'ok' here",
        "x''y 'a'",
        "+5 -3 a+b 1.5/2 +x - 7 3% -+4 ٣٤",
        "a,Bee c; Dee Foo1 ;Gee",
    ]
    for i, pattern in plain.items():
        reference = re.compile(pattern, re.S)
        for text in sharegpt[:3000] + edge:
            assert _MASKS[i][0].sub(_SLOT, text) == reference.sub(_SLOT, text), (i, text)


def test_compiled_murmur_equals_mmh3():
    rng = np.random.default_rng(11)
    alphabet = [*"ab zé中😀\x00", "\ud800"]
    texts = ["".join(rng.choice(alphabet, size=k)) for k in range(0, 70) for _ in range(8)]
    for text in texts:
        raw = text.encode("utf-8", "surrogatepass")
        buf = np.frombuffer(raw, dtype=np.uint8)
        for seed in (0, SEED):
            assert int(murmur3_x64_64(buf, 0, len(buf), seed)) == mmh3.hash64(raw, seed, signed=False)[0]


def test_ids_equal_the_shingle_definition(sharegpt, items):
    # The definition: mmh3 of each run of SHINGLE window tokens joined by spaces, under the fixed
    # permutation, the minimum; with fewer tokens, all of them. Hashed here in Python integers.
    def reference(text: str) -> str:
        if len(text) > 2 * _EDGE_CHARS:
            text = f"{text[:_EDGE_CHARS]} {_SLOT} {text[-_EDGE_CHARS:]}"
        tokens = window_tokens(text)
        runs = [" ".join(tokens[i : i + SHINGLE]) for i in range(max(len(tokens) - SHINGLE + 1, 1))]
        hashes = [mmh3.hash64(r.encode("utf-8", "surrogatepass"), SEED, signed=False)[0] for r in runs]
        xor, mult = int(_PERM_XOR), int(_PERM_MULT)
        return f"{min(((h ^ xor) * mult) & (2**64 - 1) for h in hashes):016x}"

    texts = sharegpt[:600] + [f"Explain step by step: {x}" for x in items[:60]]
    texts += ["", "   ", "one", "one two", "one two three", "日本語の文です", "a\ud800b c d"]
    assert template_ids(texts) == [reference(t) for t in texts]
