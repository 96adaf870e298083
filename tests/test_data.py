"""The shipped sample, loading in both modes, the column check and the split."""

import json
from dataclasses import replace

import pytest
from datasets import Dataset

from helpers import data, runtime

CATEGORIES = {
    "open_qa", "closed_qa", "classification", "brainstorming", "summarization",
    "information_extraction", "creative_writing", "general_qa",
}


@pytest.fixture
def smoke_rt(monkeypatch):
    monkeypatch.delenv("COURSE_MODE", raising=False)
    return replace(runtime.detect(), mode="smoke")


def test_sample_is_varied_alpaca_rows():
    lines = data.sample_path().read_text(encoding="ascii").splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) >= 64
    assert all(list(r) == ["instruction", "category", "input", "output"] for r in rows)
    assert all(r["instruction"].strip() and r["output"].strip() for r in rows)
    assert {r["category"] for r in rows} == CATEGORIES
    with_input = sum(bool(r["input"]) for r in rows) / len(rows)
    assert 0.25 <= with_input <= 0.5
    assert len({r["instruction"] for r in rows}) == len(rows)


def test_sample_path_prefers_the_copy_inside_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "__file__", str(tmp_path / "helpers" / "data.py"))
    assert data.sample_path() == tmp_path / "data" / "sample_alpaca.jsonl"
    (tmp_path / "helpers").mkdir()
    (tmp_path / "helpers" / "sample_alpaca.jsonl").write_text("{}\n")
    assert data.sample_path() == tmp_path / "helpers" / "sample_alpaca.jsonl"


def test_smoke_mode_loads_the_sample(smoke_rt):
    ds = data.load_alpaca(smoke_rt)
    n = len(data.sample_path().read_text().splitlines())
    assert len(ds) == n and set(ds.column_names) == {"instruction", "category", "input", "output"}
    assert len(data.load_alpaca(smoke_rt, limit=5)) == 5


def test_full_mode_loads_dolly_train_split(monkeypatch, smoke_rt):
    calls = []
    stand_in = Dataset.from_list([{"instruction": "i", "category": "c", "input": "", "output": "o"}] * 3)
    monkeypatch.setattr(data, "load_dataset", lambda *a, **kw: calls.append((a, kw)) or stand_in)
    ds = data.load_alpaca(replace(smoke_rt, mode="full"), limit=2)
    assert calls == [(("c-s-ale/dolly-15k-instruction-alpaca-format",), {"split": "train"})]
    assert len(ds) == 2


@pytest.mark.parametrize("limit", [0, -3, 2.5, "10"])
def test_bad_limit_is_refused(smoke_rt, limit):
    with pytest.raises(ValueError, match="limit must be a positive"):
        data.load_alpaca(smoke_rt, limit=limit)


def test_missing_columns_are_named_with_the_ones_present():
    ds = Dataset.from_dict({"instruction": ["a"], "response": ["b"]})
    with pytest.raises(ValueError) as err:
        data.check_columns(ds)
    message = str(err.value)
    assert "['input', 'output']" in message and "['instruction', 'response']" in message
    assert "rename_column" in message


def test_split_is_deterministic_and_disjoint(smoke_rt):
    ds = data.load_alpaca(smoke_rt)
    a, b = data.split(ds, eval_size=0.2, seed=0), data.split(ds, eval_size=0.2, seed=0)
    assert a["test"]["instruction"] == b["test"]["instruction"]
    assert len(a["test"]) == round(0.2 * len(ds)) and len(a["train"]) + len(a["test"]) == len(ds)
    assert not set(a["train"]["instruction"]) & set(a["test"]["instruction"])
    assert data.split(ds, eval_size=0.2, seed=1)["test"]["instruction"] != a["test"]["instruction"]
    assert len(data.split(ds, eval_size=7)["test"]) == 7


@pytest.mark.parametrize("eval_size", [0, 1.0, 1.5, -0.1, 10_000, True])
def test_bad_eval_size_is_refused(smoke_rt, eval_size):
    with pytest.raises(ValueError, match="eval_size must be"):
        data.split(data.load_alpaca(smoke_rt, limit=10), eval_size=eval_size)


def test_a_limit_above_the_rows_keeps_them_all(smoke_rt):
    n = len(data.load_alpaca(smoke_rt))
    assert len(data.load_alpaca(smoke_rt, limit=n + 1)) == n
    assert len(data.load_alpaca(smoke_rt, limit=10_000)) == n


def test_full_mode_checks_the_hubs_columns_too(monkeypatch, smoke_rt):
    renamed = Dataset.from_list([{"instruction": "i", "context": "", "response": "o"}] * 3)
    monkeypatch.setattr(data, "load_dataset", lambda *a, **kw: renamed)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['input', 'output'\]"):
        data.load_alpaca(replace(smoke_rt, mode="full"))


def test_split_defaults_hold_out_a_tenth_with_seed_0(smoke_rt):
    ds = data.load_alpaca(smoke_rt)
    default = data.split(ds)
    assert len(default["test"]) == -(-len(ds) // 10)  # datasets rounds the held-out share up
    assert default["test"]["instruction"] == data.split(ds, eval_size=0.1, seed=0)["test"]["instruction"]
    assert default["test"]["instruction"] != data.split(ds, eval_size=0.1, seed=1)["test"]["instruction"]


def test_the_smallest_splits_work(smoke_rt):
    two = data.load_alpaca(smoke_rt, limit=2)
    assert [len(p) for p in data.split(two, eval_size=1).values()] == [1, 1]
    assert [len(p) for p in data.split(two, eval_size=0.5).values()] == [1, 1]
