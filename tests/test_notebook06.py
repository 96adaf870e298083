"""Notebook 06 finds notebook 05's finished run through its record (training.find_run)."""
import json
import os

from helpers import training
from helpers.runtime import detect


def _record(folder, preset, finished=True):
    (folder / "adapter").mkdir(parents=True)
    record = {"settings": {"preset": preset}, "finished": {"step": 30, "adapter": "adapter"} if finished else None}
    (folder / training.RUN_FILE).write_text(json.dumps(record))


def test_find_run_takes_the_newest_finished_run_of_this_mode(tmp_path):
    rt = detect()
    mine = "smoke" if rt.mode == "smoke" else "t4"
    other = "t4" if mine == "smoke" else "smoke"
    assert training.find_run(rt, tmp_path) is None
    _record(tmp_path / "old", mine)
    _record(tmp_path / "unfinished", mine, finished=False)
    _record(tmp_path / "other-mode", other)
    where, record = training.find_run(rt, tmp_path)
    assert where == tmp_path / "old" and record["finished"]["step"] == 30
    _record(tmp_path / "new", mine)
    os.utime(tmp_path / "new" / training.RUN_FILE, (2e9, 2e9))
    assert training.find_run(rt, tmp_path)[0] == tmp_path / "new"
    (tmp_path / "new" / training.RUN_FILE).write_text("{half a fi")  # a broken record is no run
    assert training.find_run(rt, tmp_path)[0] == tmp_path / "old"
