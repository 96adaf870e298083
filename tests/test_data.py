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
    monkeypatch.delenv("COURSE_DATA", raising=False)
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
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(data, "load_dataset", lambda *a, **kw: calls.append((a, kw)) or stand_in)
    ds = data.load_alpaca(replace(smoke_rt, mode="full"), limit=2)
    assert calls == [(("c-s-ale/dolly-15k-instruction-alpaca-format",), {"split": "train", "token": None})]
    assert len(ds) == 2


def test_korean_sample_is_dolly_ko_shaped_and_korean():
    rows = [json.loads(line) for line in data.sample_path("dolly-ko").read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 32
    assert all(list(r) == ["instruction", "context", "response", "category"] for r in rows)
    assert {r["category"] for r in rows} == CATEGORIES
    assert all(any("\uac00" <= ch <= "\ud7a3" for ch in r["instruction"] + r["response"]) for r in rows)
    assert len({r["instruction"] for r in rows}) == len(rows)


def test_korean_smoke_data_gets_the_templates_columns(smoke_rt):
    ds = data.load_alpaca(smoke_rt, dataset="dolly-ko")
    assert set(ds.column_names) == {"instruction", "input", "output", "category"}
    first = json.loads(data.sample_path("dolly-ko").read_text(encoding="utf-8").splitlines()[0])
    assert (ds[0]["input"], ds[0]["output"]) == (first["context"], first["response"])


def test_full_mode_downloads_dolly_ko_with_the_token_and_maps_its_columns(monkeypatch, smoke_rt):
    calls, fake = [], "hf_FAKE_not_a_real_token_data_0123456789"
    stand_in = Dataset.from_list([{"instruction": "i", "context": "c", "response": "r", "category": "open_qa"}] * 3)
    monkeypatch.setenv("HF_TOKEN", fake)
    monkeypatch.setattr(data, "load_dataset", lambda *a, **kw: calls.append((a, kw)) or stand_in)
    ds = data.load_alpaca(replace(smoke_rt, mode="full"), dataset="dolly-ko")
    assert calls == [(("nlpai-lab/databricks-dolly-15k-ko",), {"split": "train", "token": fake})]
    assert ds[0]["input"] == "c" and ds[0]["output"] == "r"


def test_a_refused_gated_data_set_says_how_to_get_access(monkeypatch, smoke_rt):
    import httpx
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import GatedRepoError

    from helpers.auth import GatedModelError

    def refuse(*a, **kw):
        response = httpx.Response(403, request=httpx.Request("GET", "https://huggingface.co"))
        try:
            raise GatedRepoError("403 gated", response=response)
        except GatedRepoError as e:
            raise DatasetNotFoundError("Dataset 'nlpai-lab/databricks-dolly-15k-ko' is a gated dataset") from e

    monkeypatch.setattr(data, "load_dataset", refuse)
    with pytest.raises(GatedModelError, match="gated data set") as caught:
        data.load_alpaca(replace(smoke_rt, mode="full"), dataset="dolly-ko")
    assert "https://huggingface.co/datasets/nlpai-lab/databricks-dolly-15k-ko" in str(caught.value)
    assert "accept its conditions" in str(caught.value)


@pytest.mark.parametrize("dataset", ["dolly_ko", "ko", None, "Dolly"])
def test_a_misspelt_data_set_is_refused_by_name(smoke_rt, dataset):
    with pytest.raises(ValueError, match="dataset must be one of \\['dolly', 'dolly-ko'\\]"):
        data.load_alpaca(smoke_rt, dataset=dataset)


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


@pytest.mark.parametrize("dataset", ["dolly", "dolly-ko"])
def test_course_data_sample_loads_the_shipped_sample_in_full_mode(monkeypatch, smoke_rt, dataset):
    monkeypatch.setattr(data, "_download", lambda name: pytest.fail(f"downloaded {name}"))
    monkeypatch.setenv("COURSE_DATA", "sample")
    full = data.load_alpaca(replace(smoke_rt, mode="full"), dataset=dataset)
    assert full.to_list() == data.load_alpaca(smoke_rt, dataset=dataset).to_list()
    monkeypatch.setenv("COURSE_DATA", "hub")
    with pytest.raises(pytest.fail.Exception, match=f"downloaded {data.DATASETS[dataset]['hub']}"):
        data.load_alpaca(replace(smoke_rt, mode="full"), dataset=dataset)
