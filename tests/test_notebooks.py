"""Every notebook runs top to bottom in smoke mode, shows its plots and never leaks a token."""
import html
import json
import re
from pathlib import Path

import nbformat
import pytest
from english_lines import notebook_english_lines
from nbclient.exceptions import CellExecutionError
from run_course import execute

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
KOREAN = sorted((ROOT / "notebooks" / "ko").glob("[0-9][0-9]_*.ipynb"))
KO05, KO06 = ROOT / "notebooks" / "ko" / "05_gemma_qlora_t4.ipynb", ROOT / "notebooks" / "ko" / "06_did_it_learn.ipynb"
HANGUL = re.compile("[\uac00-\ud7a3]")
# Run after a notebook's last cell: the names of the notebook's globals whose value shows the token.
TOKEN_IN_NAMESPACE = """import os as _os
_token = _os.environ["HF_TOKEN"]
print("globals showing the token:", sorted(_k for _k, _v in list(globals().items())
      if not _k.startswith("_") and _k not in ("In", "Out") and _token in repr(_v)))"""
FAKE_TOKEN = "hf_FAKE_not_a_real_token_notebooks_0123456789"
# The only stderr an executed notebook may show (JupyterLab draws each stderr output as a red box): each line is
# harmless and printed before a learner can do anything about it. Anything else (a warning with a path inside the
# virtual environment, a deprecation) is either filtered in the cell with a sentence saying why, or fixed.
ALLOWED_STDERR = (
    # bitsandbytes 0.50 looks for an optional CPU kernel package when imported; harmless (docs/facts.md).
    r"Failed to load CPU gemm_4bit_forward from kernels-community",
)
# A library's progress bar as JupyterLab shows it: a tqdm widget (an HBox holding a progress bar, or its text
# fallback), transformers' HTML bar ("[30/30 00:08, Epoch 1/2]", finished or not) and the Trainer's table of logged
# losses that comes with it (it repeats the course's live loss plot). The course's own widgets (sliders) are not bars.
TQDM_BAR = re.compile(r"\d+%\||it/s\]|examples/s\]|s/it\]")
HTML_BAR = re.compile(r"<progress\b")
LOSS_TABLE = re.compile(r"<th>\s*(Step|Epoch)\s*</th>.*?<th>\s*(Training Loss|Validation Loss)\s*</th>", re.DOTALL)
PROGRESS_MODELS = {"FloatProgressModel", "IntProgressModel"}


def progress_widgets(widget_state: dict) -> set[str]:
    """The ids of the widget models that are progress bars, or boxes holding one (tqdm's HBox), in a saved notebook."""
    state = widget_state.get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    bars = {k for k, v in state.items() if v.get("model_name") in PROGRESS_MODELS}
    boxes = {k for k, v in state.items()
             if any(str(child).removeprefix("IPY_MODEL_") in bars for child in v.get("state", {}).get("children", []))}
    return bars | boxes


def unexplained_noise(outputs, widget_state: dict | None = None) -> list[str]:
    """Return every stderr line and progress bar in a notebook's outputs that the allow-list above does not explain.

    widget_state: the executed notebook's metadata["widgets"], where the widgets' models are saved.
    """
    noise = [line for o in outputs if o.get("name") == "stderr" for line in o.get("text", "").splitlines()
             if line.strip() and not any(re.search(allowed, line) for allowed in ALLOWED_STDERR)]
    bars = progress_widgets(widget_state or {})
    for o in outputs:
        data = o.get("data", {})
        view = data.get("application/vnd.jupyter.widget-view+json")
        if view is not None and (view.get("model_id") in bars or TQDM_BAR.search(data.get("text/plain", ""))):
            noise.append(f"a progress widget: {data.get('text/plain', '')[:120]}")
        page = data.get("text/html", "")
        if HTML_BAR.search(page) or "No log" in page:
            noise.append("a progress bar: " + " ".join(re.sub(r"<[^>]+>", " ", page).split())[:120])
        if LOSS_TABLE.search(page):
            noise.append("the Trainer's loss table (it repeats the live loss plot)")
    return noise


def test_unexplained_noise_flags_warnings_bars_and_loss_tables_but_not_the_allowed_lines():
    outputs = [
        {"output_type": "stream", "name": "stderr", "text": "Failed to load CPU gemm_4bit_forward from "
         "kernels-community: No module named 'kernels'.\nx.py:3: FutureWarning: `is_gradient_checkpointing` is "
         "deprecated\n  warnings.warn(\n"},
        {"output_type": "stream", "name": "stderr", "text": "/x/.venv/lib/python3.11/site-packages/bitsandbytes/"
         "optim/optimizer.py:509: UserWarning: Paged optimizers are not supported on CPU\n"},
        {"output_type": "display_data", "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "aa"},
                                                 "text/plain": "Loading weights:   0%|          | 0/20"}},
        {"output_type": "display_data", "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "bb"},
                                                 "text/plain": "interactive(children=(SelectionSlider(...),))"}},
        # a tqdm bar whose text fallback looks like nothing: only its saved model shows it is a bar
        {"output_type": "display_data", "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "box"},
                                                 "text/plain": "HBox(children=(HTML(value=''),))"}},
        {"output_type": "display_data", "data": {"text/html": "<progress value='30' max='30'></progress> "
                                                              "[30/30 00:08, Epoch 1/2]"}},
        {"output_type": "display_data", "data": {"text/html": "<progress value='5' max='30'></progress>"}},
        {"output_type": "display_data", "data": {"text/html": "<td>No log</td><td>7.2</td>"}},
        {"output_type": "display_data", "data": {"text/html": "<table><thead><tr><th>Step</th>"
                                                              "<th>Training Loss</th></tr></thead></table>"}},
        {"output_type": "display_data", "data": {"text/html": "<table><tr><th>instruction</th>"
                                                              "<th>after training</th></tr></table>"}},
    ]
    widgets = {"application/vnd.jupyter.widget-state+json": {"state": {
        "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_label", "IPY_MODEL_bar"]}},
        "bar": {"model_name": "FloatProgressModel", "state": {"value": 3, "max": 20}},
        "bb": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_slider"]}},
        "slider": {"model_name": "SelectionSliderModel", "state": {}}}}}
    noise = unexplained_noise(outputs, widgets)
    assert noise[:3] == ["x.py:3: FutureWarning: `is_gradient_checkpointing` is deprecated", "  warnings.warn(",
                         ("/x/.venv/lib/python3.11/site-packages/bitsandbytes/optim/optimizer.py:509: UserWarning: "
                          "Paged optimizers are not supported on CPU")]
    assert noise[3].startswith("a progress widget: Loading weights")
    assert noise[4].startswith("a progress widget: HBox")
    assert "Epoch 1/2" in noise[5] and noise[6].startswith("a progress bar") and "No log" in noise[7]
    assert noise[8].startswith("the Trainer's loss table")
    assert len(noise) == 9
    assert len(unexplained_noise(outputs)) == 8, "without the saved widget models only the text fallbacks show"


def test_english_lines_flag_a_helpers_english_instruction_but_not_labels_data_or_library_output():
    def cell(source, *texts, kind="stream"):
        outputs = [{"output_type": "stream", "name": "stdout", "text": t} if kind == "stream" else
                   {"output_type": "display_data", "data": {"text/markdown": t}} for t in texts]
        return {"cell_type": "code", "source": source, "outputs": outputs}

    instruction = "No finished run of notebook 05 here. Run notebook 05 to the end first, then run this again."
    notebook = {"cells": [
        # a helper's message: not in the cell's code, so the learner reads it only in English
        cell("found = training.find_run(rt)", "설치 확인 완료\n", instruction + "\n"),
        # a label the cell's own code prints (across two string literals), a table's header, maths
        cell('print(f"the outermost level sits at {x:.4f} standard "\n      f"deviations, no outlier {y}")',
             "the outermost level sits at 1.8481 standard deviations, no outlier 0.1\n",
             "format     E  M        max  step at 1  smallest normal\n", "q, k, v, o: 8 * (h + o)\n"),
        # library output: the post's old keyword refused, a library's source, the model card (English on purpose)
        cell("transformers.TrainingArguments(**post_args)",
             "TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'warmup_ratio'\n"),
        cell("print(inspect.getsource(trl.SFTTrainer.__init__))", "        # When using QLoRA, the PEFT adapter weights"
             " are converted to bf16 to follow the recommendations\n"),
        cell("card = hub.model_card(HUB_REPO)\ndisplay(Markdown(card))", "Prompt it the same way, ending at the "
             "response, and it answers.", kind="markdown"),
        # the English sample's rows and the post's prompt template
        cell("print(dataset[0])", "Why does bread go stale?\nIts starch recrystallises as it cools and pushes water "
             "out, so the crumb turns firm and dry.\n", "Below is an instruction that describes a task, paired with "
             "an input that provides further context.\n"),
    ]}
    assert notebook_english_lines(notebook) == [instruction]
    # on the Korean data set, English sample rows are news: the template alone stays allowed
    assert notebook_english_lines(notebook, data=False) == [
        instruction, "Why does bread go stale?",
        "Its starch recrystallises as it cools and pushes water out, so the crumb turns firm and dry."]
    # the label is allowed because the cell's code prints it: printed by a helper, it is listed
    notebook["cells"][1]["source"] = "quant.describe(levels)"
    assert "the outermost level sits at 1.8481 standard deviations, no outlier 0.1" in notebook_english_lines(notebook)


def test_the_course_has_its_six_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS + KOREAN, ids=lambda p: p.relative_to(ROOT / "notebooks").as_posix())
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code cells"
    assert all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("path", NOTEBOOKS + KOREAN, ids=lambda p: p.relative_to(ROOT / "notebooks").as_posix())
def test_runs_in_smoke_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    edition = path.parent.relative_to(ROOT).as_posix()
    nb = execute(path, ROOT / "build" / "test-notebooks" / edition, append=[TOKEN_IN_NAMESPACE])
    *cells, look = [c for c in nb.cells if c.cell_type == "code"]
    assert look.outputs[0]["text"].strip() == "globals showing the token: []", "a notebook global holds the token"
    outputs = [o for c in cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = json.dumps(outputs, ensure_ascii=False)
    mode_line = "스모크 모드" if edition.endswith("/ko") else "Smoke mode"
    assert mode_line in text, "the one visible mode line is missing (or not in the notebook's language)"
    # The solution cells answer every exercise: a check that says "not yet" there is a broken check.
    lines = [line for o in outputs for line in o.get("text", "").splitlines()]
    rejected = [line for line in lines if "❌" in line]
    assert not rejected, f"an exercise check rejected its solution: {rejected}"
    assert sum("✅" in line for line in lines) >= 3, "the solutions of the three exercises were not checked"
    assert FAKE_TOKEN not in text, "the Hugging Face token leaked into an output"
    noise = unexplained_noise(outputs, nb.metadata.get("widgets"))
    assert not noise, f"warnings or progress bars the lesson does not explain: {noise}"
    assert any("image/png" in o.get("data", {}) for o in outputs), "no plot was shown"
    if edition.endswith("/ko"):
        english = notebook_english_lines({"cells": nb.cells[:-1]})  # not the test's own look at the globals
        assert not english, f"English sentences in the Korean edition (scripts/english_lines.py): {english}"
    saved = [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()] if (tmp_path / "outputs").exists() else []
    for p in saved:
        assert FAKE_TOKEN.encode() not in p.read_bytes(), f"the token was written to {p}"


def outputs_of(nb: nbformat.NotebookNode, cell_id: str) -> str:
    """The text a cell's outputs show (streams, text/plain and the error line), as one string."""
    cell = next(c for c in nb.cells if c.get("id") == cell_id)
    return "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") or f"{o.get('ename')}: "
                     f"{o.get('evalue')}" for o in cell.get("outputs", []))


def answers_table(nb: nbformat.NotebookNode) -> dict[str, list[str]]:
    """Notebook 06's table of answers side by side (its HTML output), as the text of each column by its header."""
    page = next(o["data"]["text/html"] for c in nb.cells if c.get("id") == "nb06-answers" for o in c.get("outputs", [])
                if "text/html" in o.get("data", {}))
    headers = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", page, re.DOTALL)]
    rows = [[html.unescape(re.sub(r"<[^>]+>", "", td)).strip() for td in re.findall(r"<td[^>]*>(.*?)</td>", row,
                                                                                      re.DOTALL)]
            for row in re.findall(r"<tr>(.*?)</tr>", page, re.DOTALL) if "<td" in row]
    return {h: [row[i] for row in rows] for i, h in enumerate(headers)}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_korean_learner_runs_05_then_06_on_dolly_ko_in_smoke_mode(tmp_path, monkeypatch):
    # Issue 24's goal: notebook 05 with DATASET = "dolly-ko" (set the way scripts/gpu_check.py sets MAX_STEPS), then
    # notebook 06 on its adapter; 06's smoke-goal cell asserts the goal itself (issue 23), on the Korean rows.
    monkeypatch.setenv("COURSE_MODE", "smoke")
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "outputs"))  # one folder: 06 finds 05's run there
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    out = ROOT / "build" / "test-notebooks" / "dolly-ko"
    nb05 = execute(KO05, out, settings={"DATASET": "dolly-ko"})
    assert "data=dolly-ko" in outputs_of(nb05, "nb05-06"), outputs_of(nb05, "nb05-06")
    goal = None
    try:
        nb06 = execute(KO06, out)
    except CellExecutionError:
        nb06 = nbformat.read(out / KO06.name, as_version=4)
        goal = outputs_of(nb06, "nb06-smoke-goal")
        assert "Error" in goal, f"notebook 06 failed before its smoke goal:\n{goal or 'see ' + str(out / KO06.name)}"
    assert re.search(r"data\s+dolly-ko", outputs_of(nb06, "nb06-find")), "06 did not judge 05's dolly-ko run"
    # The answers are Korean: with the adapter, every answer with text has Hangul (base model: whatever it writes).
    table = answers_table(nb06)
    assert all(HANGUL.search(r) for r in table["reference"]), table["reference"]
    adapter = [a.removesuffix("⏹").strip() for a in table["base + adapter"] if not a.startswith("(빈 답변")]
    assert adapter and all(HANGUL.search(a) for a in adapter), table["base + adapter"]
    # An answer that ended by itself is whole text: no broken character (a cut multi-byte one shows as U+FFFD).
    stopped = [a for a in table["base + adapter"] if a.endswith("⏹")]
    assert stopped and not [a for a in stopped if "\ufffd" in a], stopped
    for nb in (nb05, nb06):
        english = notebook_english_lines(nb, data=False)
        assert not english, f"English sentences in the Korean edition on dolly-ko: {english}"
    if goal is not None:
        pytest.xfail(f"06's smoke goal fails on dolly-ko with the committed tiny model: {goal.splitlines()[-1][:300]}")
