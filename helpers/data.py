"""The instruction data: dolly-15k (English or Korean) on a GPU, a shipped sample of the same shape in smoke mode.

COURSE_DATA=sample takes the shipped sample in full mode too (the GPU check runs full mode without the Hub).
"""

import math
from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset

from helpers.runtime import Runtime, check_runtime, course_data, detect

DOLLY = "c-s-ale/dolly-15k-instruction-alpaca-format"
DOLLY_KO = "nlpai-lab/databricks-dolly-15k-ko"
COLUMNS = ("instruction", "input", "output")
# Each data set's Hub id, its smoke-mode stand-in (written for the course, same columns) and the renames that give
# the template's columns. dolly-ko is a DeepL translation of databricks-dolly-15k that keeps Dolly's own columns.
# The Korean sample is written in Korean, not translated: same columns and categories as dolly-ko, but its
# contexts read like Korean news or encyclopedia text (~다), where dolly-ko's DeepL text is mostly polite (~습니다).
DATASETS = {
    "dolly": {"hub": DOLLY, "sample": "sample_alpaca.jsonl", "rename": {}},
    "dolly-ko": {
        "hub": DOLLY_KO, "sample": "sample_dolly_ko.jsonl", "rename": {"context": "input", "response": "output"},
    },
}


def check_dataset_name(dataset: str) -> str:
    """Return dataset if it is one of DATASETS, else raise a ValueError naming the choices."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}.")
    return dataset


def sample_path(dataset: str = "dolly") -> Path:
    """Return a data set's shipped sample: inside the installed package (wheel) first, else the repository's data/."""
    name = DATASETS[check_dataset_name(dataset)]["sample"]
    packaged = Path(__file__).with_name(name)
    if packaged.exists():
        return packaged
    return Path(__file__).resolve().parent.parent / "data" / name


def check_dataset(ds, name: str = "ds") -> Dataset:
    """Return ds if it is a datasets.Dataset with at least one row, else raise a TypeError/ValueError naming `name`."""
    if isinstance(ds, DatasetDict):
        raise TypeError(
            f"{name} must be one split, a datasets.Dataset, got a DatasetDict with splits {sorted(ds)}: "
            f"pick one, e.g. {name}['train']."
        )
    if not isinstance(ds, Dataset):
        hint = " Make one with datasets.Dataset.from_list(rows)." if isinstance(ds, (list, tuple)) else ""
        raise TypeError(
            f"{name} must be a datasets.Dataset (data.load_alpaca or data.split give one), "
            f"got {type(ds).__name__}.{hint}"
        )
    if len(ds) == 0:
        raise ValueError(f"{name} has 0 rows: pass a Dataset with at least one row (check DATA_LIMIT and the split).")
    return ds


def check_columns(ds: Dataset, columns: tuple[str, ...] = COLUMNS) -> Dataset:
    """Return ds unchanged if it has the prompt template's columns, else raise a ValueError naming the gaps."""
    if isinstance(ds, DatasetDict) or not isinstance(ds, Dataset):
        check_dataset(ds)
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise ValueError(
            f"ds lacks the column(s) {missing}; it has {ds.column_names}. The prompt template needs "
            f"{list(columns)}: rename your columns (ds.rename_column(old, new)) or add them (empty input is fine)."
        )
    return ds


def _download(name: str) -> Dataset:
    """Download a Hub data set's train split, turning the Hub's refusal of a gated one into the course's advice."""
    from helpers.auth import GatedModelError, hf_token, is_auth_error

    try:
        return load_dataset(name, split="train", token=hf_token())
    except Exception as e:  # datasets wraps the Hub's 401/403 in several error types
        if is_auth_error(e):
            raise GatedModelError(name, kind="data set") from None
        raise


def load_alpaca(rt: Runtime | None = None, limit: int | None = None, dataset: str = "dolly") -> Dataset:
    """Load dolly-15k or dolly-ko (full mode) or its shipped sample (smoke mode, COURSE_DATA=sample), cut to `limit`."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive whole number of rows or None for all, got {limit!r}.")
    source = DATASETS[check_dataset_name(dataset)]
    rt = check_runtime(rt) or detect()
    if rt.mode == "full" and course_data() == "hub":
        ds = _download(source["hub"])
    else:
        ds = load_dataset("json", data_files=str(sample_path(dataset)), split="train")
    if all(old in ds.column_names for old in source["rename"]):
        ds = ds.rename_columns(source["rename"])
    check_columns(ds)
    return ds.select(range(min(limit, len(ds)))) if limit else ds


def split(ds: Dataset, eval_size: float = 0.1, seed: int = 0) -> DatasetDict:
    """Split ds into "train" and "test" the same way every time for a given seed."""
    check_dataset(ds)
    n = len(ds)
    if n < 2:
        raise ValueError(f"ds has {n} row: split needs at least 2 (one to train on, one to hold out).")
    if isinstance(eval_size, bool) or not (
        (isinstance(eval_size, float) and 0 < eval_size < 1) or (isinstance(eval_size, int) and 0 < eval_size < n)
    ):
        raise ValueError(
            f"eval_size must be a fraction between 0 and 1 or a row count between 1 and {n - 1}, got {eval_size!r}."
        )
    # datasets holds out ceil(fraction * n) rows: refuse a fraction that would leave nothing to train on.
    if isinstance(eval_size, float) and math.ceil(eval_size * n) >= n:
        raise ValueError(
            f"eval_size={eval_size!r} of {n} rows holds out all of them: pass a smaller fraction or a row count "
            f"between 1 and {n - 1}."
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be a whole number (int), got {seed!r}.")
    return ds.train_test_split(test_size=eval_size, seed=seed)
