"""ROUGE-L is the F-measure (not recall or precision), and answers, endings and references must pair up."""

import pytest

from helpers import evaluate

# (prediction, reference, the LCS in words, the prediction's words, the reference's words), worked out by hand:
# precision = lcs / prediction, recall = lcs / reference, F = 2 P R / (P + R).
CASES = [
    ("cat sat", "the cat sat on the mat", 2, 2, 6),  # short and right: P 1, R 1/3, F 1/2
    ("the cat sat on the mat today in the sun", "cat sat", 2, 10, 2),  # long and rambling: P 1/5, R 1, F 1/3
    ("the dog sat on a mat", "the cat sat on the mat in the sun", 4, 6, 9),  # the, sat, on, mat
    ("blue light scatters", "red light scatters less than blue light", 2, 3, 7),
]


def f_measure(lcs: int, pred: int, ref: int) -> float:
    precision, recall = lcs / pred, lcs / ref
    return 2 * precision * recall / (precision + recall)


@pytest.mark.parametrize("prediction, reference, lcs, pred, ref", CASES)
def test_rouge_l_is_the_f_measure_worked_out_by_hand(prediction, reference, lcs, pred, ref):
    (score,) = evaluate.rouge_l([prediction], [reference])
    assert score == pytest.approx(f_measure(lcs, pred, ref))
    # neither recall nor precision alone (the table's cases have answers of another length than the reference)
    assert score != pytest.approx(lcs / ref) and score != pytest.approx(lcs / pred)


def test_rouge_l_scores_each_pair_in_order():
    scores = evaluate.rouge_l([c[0] for c in CASES], [c[1] for c in CASES])
    assert scores == pytest.approx([f_measure(*c[2:]) for c in CASES])


@pytest.mark.parametrize("endings", [
    ["stopped"],  # fewer endings than answers
    ["stopped", "stopped", "token limit"],  # more
    [],
])
def test_endings_of_another_length_than_the_answers_are_refused(endings):
    with pytest.raises(ValueError, match=f"endings must give one of .* per answer, got {len(endings)}"):
        evaluate.summary(["a b", "c d"], endings, ["a b", "c d"])


@pytest.mark.parametrize("references", [["a b"], ["a b", "c d", "e f"]])
def test_references_of_another_length_than_the_answers_are_refused(references):
    with pytest.raises(ValueError, match=f"predictions and references must pair up, got 2 and {len(references)}"):
        evaluate.summary(["a b", "c d"], ["stopped", "stopped"], references)


@pytest.mark.parametrize("call, error, name", [
    (lambda: evaluate.summary("a b", ["stopped"], ["a b"]), TypeError, "texts"),
    (lambda: evaluate.summary(["a b"], ["Stopped"], ["a b"]), ValueError, "endings"),
    (lambda: evaluate.summary(["a b"], ["stopped"], "a b"), TypeError, "references"),
    (lambda: evaluate.rouge_l([1.0], ["a"]), TypeError, "predictions"),
    (lambda: evaluate.rouge_l(["a"], [b"a"]), TypeError, "references"),
    (lambda: evaluate.rouge_l({"a": "b"}, ["a"]), TypeError, "predictions"),
    (lambda: evaluate.answers(None, None, ["p"], max_new_tokens=True), TypeError, "max_new_tokens"),
    (lambda: evaluate.answers(None, None, ["p"], max_new_tokens=-1), ValueError, "max_new_tokens"),
    (lambda: evaluate.eos_probability(None, None, [], batch_size=1), TypeError, "texts"),
])
def test_bad_input_is_refused_naming_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()
