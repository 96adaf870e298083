"""Notebook 06: the loss on the reference answers alone (base vs base + adapter); its exercises' checks."""

import math

import torch

from helpers.checks import _matches, check
from helpers.language import pick
from helpers.prompting import format_prompt, inference_prompt
from helpers.runtime import cpu_threads


def _rows(rows) -> list[dict]:
    """Return rows (a datasets.Dataset or a list of row dicts) as a non-empty list of dicts."""
    rows = [dict(r) for r in rows] if hasattr(rows, "__iter__") and not isinstance(rows, (str, dict)) else None
    if not rows:
        raise TypeError("rows must be a non-empty list of rows (e.g. the held-out rows of notebook 05's split).")
    return rows


def answer_tokens(tokenizer, row: dict) -> tuple[list[int], int]:
    """Return a row's token ids as trained (<bos>, template, answer, <eos>) and where its answer starts."""
    ids = tokenizer(format_prompt(row))["input_ids"] + [tokenizer.eos_token_id]
    prompt = tokenizer(inference_prompt(row))["input_ids"]
    # The answer starts where the two token lists part (a merge across "### Response\n" would move it by one).
    start = next((i for i, (a, b) in enumerate(zip(ids, prompt)) if a != b), min(len(prompt), len(ids) - 1))
    return ids, start


def answer_loss(model, tokenizer, rows, batch_size: int = 2) -> dict:
    """Return the mean cross-entropy over the reference answers' tokens and their closing <eos>, with the prompt given.

    The template, instruction and input are given, not scored (the eval loss scores them too); P(<eos>) by position
    is evaluate.eos_places. Returns {"answer loss": mean over every answer token, "answer tokens": their count}.
    """
    rows = _rows(rows)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number, 1 or more, got {batch_size!r}.")
    nll, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), cpu_threads(model.device):
            for first in range(0, len(rows), batch_size):
                pairs = [answer_tokens(tokenizer, r) for r in rows[first : first + batch_size]]
                width = max(len(ids) for ids, _ in pairs)
                pad = tokenizer.pad_token_id
                ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in pairs], device=model.device)
                mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in pairs], device=model.device)
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
                logp = torch.log_softmax(logits, dim=-1)  # position t predicts token t + 1
                for b, (row_ids, start) in enumerate(pairs):
                    targets = torch.tensor(row_ids[start:], device=model.device)
                    scored = logp[b, start - 1 : len(row_ids) - 1]  # the answer's tokens and its <eos>
                    nll -= scored.gather(1, targets[:, None]).sum().item()
                    count += len(targets)
                del logits, logp
    finally:
        model.train(was_training)
    return {"answer loss": nll / count, "answer tokens": count}


def share_interval(k: int, n: int) -> float:
    """Return the half-width of the normal-approximation 95 % interval of a share k / n (1.96 standard errors)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or not 0 <= k <= n:
        raise ValueError(f"k and n must be counts with 0 <= k <= n and n >= 1, got k={k!r}, n={n!r}.")
    p = k / n
    return 1.96 * math.sqrt(p * (1 - p) / n)


def check_lcs_words(answer: object) -> bool:
    """Notebook 06, exercise 1: the ROUGE-L F-measure of "the cat sat on the mat" against "the cat lay on a mat"."""
    # LCS: the, cat, on, mat = 4 words of 6 in each: precision = recall = 4/6, F = 4/6 (0.67 or more figures).
    ok = _matches(answer, torch.tensor(4 / 6, dtype=torch.float64), figures=2)
    return check(pick("Exercise 1: ROUGE-L by hand", "연습 1: 손으로 ROUGE-L 구하기"), ok,
                 pick("find the longest run of words both share in order (not necessarily adjacent); precision = "
                      "its length / the answer's words, recall = its length / the reference's words, F = their "
                      "harmonic mean.",
                      "두 문장이 같은 순서로 공유하는 가장 긴 단어 열(붙어 있지 않아도 됨)을 찾으세요. "
                      "정밀도 = 그 길이 / 답변의 단어 수, 재현율 = 그 길이 / 참조의 단어 수, "
                      "F = 두 값의 조화 평균입니다."))


def check_share_interval(answer: object, k: int = 24, n: int = 48) -> bool:
    """Notebook 06, exercise 2: the ± of a 95 % interval on k of n answers that stop by themselves."""
    # 0.14 or more figures: n - 1 (0.1429) and a wrongly rounded 0.143 are near misses, so wrong
    ok = _matches(answer, torch.tensor(share_interval(k, n), dtype=torch.float64), figures=2)
    return check(pick("Exercise 2: how sure is a share of 48?", "연습 2: 48개 중 비율은 얼마나 확실할까?"), ok,
                 pick(f"p = {k}/{n}; the half-width is 1.96 * sqrt(p * (1 - p) / n), as a fraction (not percent).",
                      f"p = {k}/{n}; 반폭은 1.96 * sqrt(p * (1 - p) / n)입니다(퍼센트가 아니라 비율로)."))


def check_eos_ratio(answer: object, places: dict) -> bool:
    """Notebook 06, exercise 3: how many times likelier <eos> is right after the reference than inside it."""
    expected = places["after the reference"] / places["inside the reference"]
    ok = None if answer is None else isinstance(answer, (int, float)) and not isinstance(answer, bool) and \
        math.isclose(answer, expected, rel_tol=1e-6)
    return check(pick("Exercise 3: is the stop specific?", "연습 3: 멈춤이 그 자리에만 나타날까?"), ok,
                 pick('divide eos["base + adapter"]["after the reference"] by eos["base + adapter"]["inside the '
                      'reference"].',
                      'eos["base + adapter"]["after the reference"]를 eos["base + adapter"]["inside the reference"]로 '
                      '나누세요.'))
