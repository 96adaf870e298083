"""The instruction data: dolly-15k in alpaca format on a GPU, the shipped sample in smoke mode."""

from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset

from helpers.runtime import Runtime, detect

DOLLY = "c-s-ale/dolly-15k-instruction-alpaca-format"
COLUMNS = ("instruction", "input", "output")


def sample_path() -> Path:
    """Return the shipped sample: inside the installed package (wheel) first, else the repository's data/."""
    packaged = Path(__file__).with_name("sample_alpaca.jsonl")
    if packaged.exists():
        return packaged
    return Path(__file__).resolve().parent.parent / "data" / "sample_alpaca.jsonl"


def check_columns(ds: Dataset, columns: tuple[str, ...] = COLUMNS) -> Dataset:
    """Return ds unchanged if it has the prompt template's columns, else raise a ValueError naming the gaps."""
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise ValueError(
            f"ds lacks the column(s) {missing}; it has {ds.column_names}. The prompt template needs "
            f"{list(columns)}: rename your columns (ds.rename_column(old, new)) or add them (empty input is fine)."
        )
    return ds


def load_alpaca(rt: Runtime | None = None, limit: int | None = None) -> Dataset:
    """Load dolly-15k (full mode) or the shipped sample (smoke mode), checked, optionally cut to `limit` rows."""
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive whole number of rows or None for all, got {limit!r}.")
    rt = rt or detect()
    if rt.mode == "full":
        ds = load_dataset(DOLLY, split="train")
    else:
        ds = load_dataset("json", data_files=str(sample_path()), split="train")
    check_columns(ds)
    return ds.select(range(min(limit, len(ds)))) if limit else ds


def split(ds: Dataset, eval_size: float | int = 0.1, seed: int = 0) -> DatasetDict:
    """Split ds into "train" and "test" the same way every time for a given seed."""
    if isinstance(eval_size, bool) or not (
        (isinstance(eval_size, float) and 0 < eval_size < 1) or (isinstance(eval_size, int) and 0 < eval_size < len(ds))
    ):
        raise ValueError(
            f"eval_size must be a fraction between 0 and 1 or a row count between 1 and {len(ds) - 1}, "
            f"got {eval_size!r}."
        )
    return ds.train_test_split(test_size=eval_size, seed=seed)
