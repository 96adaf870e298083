"""Evaluation beyond the loss: ROUGE-L against the reference, and whether each answer stops by itself."""

import re

from nltk.stem import porter
from rouge_score import rouge_scorer, tokenizers

from helpers.prompting import left_padded

# How an answer ended: the model wrote <eos> after some text; it wrote <eos> before any text; it began another
# example of the template (any of its "###" lines: an answer that writes "### Input" and then <eos> did not stop in
# the response's form); it ran out of tokens.
ENDINGS = ("stopped", "empty", "new instruction", "token limit")
NEW_INSTRUCTION = "### Instruction"
TEMPLATE_LINES = (NEW_INSTRUCTION, "### Input", "### Response")
# Hangul syllables and jamo. rouge-score's own tokenizer keeps only [a-z0-9], so it reads a Korean answer as its digits.
HANGUL = re.compile(r"[\u1100-\u11ff\u3131-\u318e\uac00-\ud7a3]")
KOREAN_TOKENS = re.compile(r"[\u1100-\u11ff\u3131-\u318e\uac00-\ud7a3]|[a-z0-9]+")


class KoreanTokenizer(tokenizers.Tokenizer):
    """ROUGE tokens for Korean: each Hangul syllable, and each [a-z0-9] word (Porter-stemmed, as rouge-score does)."""

    # Syllables, not space-separated words: a Korean word glues particles and endings onto its stem (백록담입니다,
    # 백록담이), so words would match only when the ending matches too, while syllables match the shared stem.
    def __init__(self):
        self._stemmer = porter.PorterStemmer()

    def tokenize(self, text: str) -> list[str]:
        return [self._stemmer.stem(t) if len(t) > 3 and t.isascii() and t.isalpha() else t
                for t in KOREAN_TOKENS.findall(text.lower())]


def _check_texts(name: str, texts: object) -> list[str]:
    """Return texts as a list, or raise a TypeError naming the argument when it is not a non-empty list of str."""
    # Any sized sequence will do: a list, or a datasets column such as rows["output"].
    if isinstance(texts, (str, bytes, dict)) or not hasattr(texts, "__len__") or not hasattr(texts, "__iter__"):
        raise TypeError(f"{name} must be a non-empty list of strings, got {texts!r:.80}.")
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise TypeError(f"{name} must be a non-empty list of strings, got {[type(t).__name__ for t in texts][:5]}.")
    return texts


def _check_count(name: str, value: object) -> int:
    """Return value when it is a positive int, else raise a ValueError/TypeError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be 1 or more, got {value!r}.")
    return value


def ending(text: str, new_ids: list[int], eos_token_id: int) -> str:
    """Return how one answer ended (one of ENDINGS) from its text and the token ids generated for it."""
    if any(line in text for line in TEMPLATE_LINES):
        return "new instruction"
    if eos_token_id in new_ids:
        return "stopped" if text.strip() else "empty"
    return "token limit"


def answers(model, tokenizer, prompts: list[str], max_new_tokens: int = 64,
            batch_size: int = 8) -> tuple[list[str], list[str]]:
    """Answer prompts greedily in batches; return the answers' texts and how each ended (see ENDINGS)."""
    prompts = _check_texts("prompts", prompts)
    max_new_tokens, batch_size = _check_count("max_new_tokens", max_new_tokens), _check_count("batch_size", batch_size)
    texts, endings = [], []
    with left_padded(model, tokenizer):
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True).to(model.device)
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                                 pad_token_id=tokenizer.pad_token_id)
            for ids in out[:, batch["input_ids"].shape[1] :].tolist():
                text = tokenizer.decode(ids, skip_special_tokens=True)
                texts.append(text)
                endings.append(ending(text, ids, tokenizer.eos_token_id))
    return texts, endings


def eos_probability(model, tokenizer, texts: list[str], batch_size: int = 8) -> list[float]:
    """Return the probability the model gives <eos> as the next token after each text (e.g. a whole example)."""
    texts, batch_size = _check_texts("texts", texts), _check_count("batch_size", batch_size)
    probs = []
    with left_padded(model, tokenizer):
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True).to(model.device)
            logits = model(**batch, logits_to_keep=1).logits[:, -1].float()
            probs += logits.softmax(-1)[:, tokenizer.eos_token_id].tolist()
    return probs


EOS_PLACES = ("after the prompt", "inside the reference", "after the reference")


def eos_places(model, tokenizer, prompts: list[str], examples: list[str],
               batch_size: int = 4) -> dict[str, list[float]]:
    """Return P(<eos>) per example at each of EOS_PLACES (inside: the mean over the reference's own positions)."""
    prompts, examples = _check_texts("prompts", prompts), _check_texts("examples", examples)
    batch_size = _check_count("batch_size", batch_size)
    if len(prompts) != len(examples) or not all(e.startswith(p) for p, e in zip(prompts, examples)):
        raise ValueError("prompts and examples must pair up, each example being its prompt followed by the reference "
                         "(prompting.inference_prompt(row) and prompting.format_prompt(row)).")
    places = {place: [] for place in EOS_PLACES}
    with left_padded(model, tokenizer):
        for start in range(0, len(examples), batch_size):
            batch = tokenizer(examples[start : start + batch_size], return_tensors="pt", padding=True).to(model.device)
            logits = model(**batch).logits.float()
            # P(<eos>) at every position without a (batch, length, vocabulary) softmax: exp(score - logsumexp)
            p_eos = (logits[..., tokenizer.eos_token_id] - logits.logsumexp(-1)).exp().cpu()
            lengths = batch["attention_mask"].sum(1).tolist()
            for row, prompt, length in zip(p_eos, prompts[start : start + batch_size], lengths):
                row = row[-length:]  # left padding: the example's own positions are the last `length`
                # the prompt's tokens are the example's first ones (its last one, "\n", never merges with a word)
                n = len(tokenizer(prompt).input_ids)
                places["after the prompt"].append(row[n - 1].item())
                places["inside the reference"].append(row[n:-1].mean().item() if length - 1 > n else float("nan"))
                places["after the reference"].append(row[-1].item())
    return places


def rouge_l(predictions: list[str], references: list[str], korean: bool | None = None) -> list[float]:
    """Return the ROUGE-L F-measure of each prediction against its reference (rouge-score; Korean by syllable).

    korean=None scores a pair with KoreanTokenizer when either text has Hangul, else with rouge-score's own
    tokenizer and Porter stemmer (English scores are unchanged); True or False forces one of them.
    """
    predictions, references = _check_texts("predictions", predictions), _check_texts("references", references)
    if len(predictions) != len(references):
        raise ValueError(f"predictions and references must pair up, got {len(predictions)} and {len(references)}.")
    if korean is not None and not isinstance(korean, bool):
        raise TypeError(f"korean must be True, False or None (decide by the text), got {korean!r}.")
    english = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    hangul = rouge_scorer.RougeScorer(["rougeL"], tokenizer=KoreanTokenizer())
    scores = []
    for pred, ref in zip(predictions, references):
        use_korean = bool(HANGUL.search(pred + ref)) if korean is None else korean
        scores.append((hangul if use_korean else english).score(ref, pred)["rougeL"].fmeasure)
    return scores


def summary(texts: list[str], endings: list[str], references: list[str]) -> dict:
    """Return the mean ROUGE-L and how many answers ended each way, for one model's answers."""
    texts = _check_texts("texts", texts)
    unknown = sorted(set(endings) - set(ENDINGS))
    if len(endings) != len(texts) or unknown:
        raise ValueError(
            f"endings must give one of {ENDINGS} per answer, got {len(endings)} with {unknown or 'none'} unknown."
        )
    scores = rouge_l(texts, references)
    return {"answers": len(texts), "rouge_l": sum(scores) / len(scores), **{e: endings.count(e) for e in ENDINGS}}


def eval_loss(trainer) -> float:
    """Return the trainer's loss on its held-out rows, without the notebook's progress bar and metrics table."""
    from transformers.utils.notebook import NotebookProgressCallback

    if not callable(getattr(trainer, "evaluate", None)):
        raise TypeError(f"trainer must be the trainer training.make_trainer returns, got {trainer!r:.80}.")
    # In a notebook the Trainer draws a bar and a one-row table per evaluate() call, with "No log" for the
    # training loss it has not logged yet: the course prints the one number instead.
    bar = trainer.pop_callback(NotebookProgressCallback)
    try:
        return trainer.evaluate()["eval_loss"]
    finally:
        if bar is not None:
            trainer.add_callback(bar)
