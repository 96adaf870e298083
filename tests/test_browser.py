"""The course in a real browser: JupyterLab 4 driven by Debian's headless Chromium via Playwright.

A headless executor cannot see what a learner sees: a widget that never renders, a plot that does
not follow its slider, a cell that waits for input. These tests copy a notebook into a temporary
folder, open it in a JupyterLab served on 127.0.0.1 (a free port, a random token), run all cells
from the Run menu and look at the page. Screenshots land in build/screenshots/.
"""
import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
import sync_badges

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: run `.venv/bin/pip install -r requirements-dev.txt`")

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SCREENSHOTS = ROOT / "build" / "screenshots"
# Playwright cannot download its own browser here (no network), so it drives Debian's chromium;
# these flags keep that browser from phoning home or needing a GPU or a sandbox.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}
# User settings for a clean, fully rendered page: no news or update toasts over the notebook, and
# every cell attached to the DOM (the default windowing skips off-screen cells).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
# What a learner sees instead of a widget when the widget manager is missing or broken.
WIDGET_FAILURE = re.compile(r"Loading widget|Error displaying widget|\b(IntSlider|interactive)\(")
TRACEBACK = "Traceback (most recent call last)"

# One look at the open notebook: the kernel's status (toolbar indicator and status bar; the indicator
# alone says "idle" before any kernel is attached), queued cells ([*]), code cells not run, input
# prompts, tracebacks and the text of every output.
NOTEBOOK_STATE_JS = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const cells = [...panel.querySelectorAll('.jp-CodeCell')];
  const prompt = c => c.querySelector('.jp-InputArea-prompt')?.textContent ?? '';
  const source = c => c.querySelector('.cm-content')?.innerText.trim() ?? '';
  const stderr = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]';
  return {
    status: panel.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status ?? 'missing',
    kernel: document.querySelector('.jp-StatusBar-TextItem[title^="Change kernel"]')?.textContent ?? '',
    queued: cells.filter(c => prompt(c).includes('*')).length,
    unrun: cells.filter(c => source(c) && !/\\[\\d+\\]/.test(prompt(c))).length,
    stdin: panel.querySelectorAll('.jp-Stdin').length,
    errors: [...panel.querySelectorAll(stderr)].map(e => e.innerText).filter(t => t.includes('TRACEBACK')),
    outputs: [...panel.querySelectorAll('.jp-OutputArea-output')].map(e => e.innerText),
  };
}""".replace("TRACEBACK", TRACEBACK)

# Draws each character on a canvas in the font the page uses for it and compares its pixels with those of two
# unassigned code points (U+0378, U+0379), which no font has: where no installed font has a glyph, Chromium draws the
# same empty box (.notdef, "tofu") for every character, so a character drawn like them is a box on screen.
GLYPHS_JS = """([font, chars]) => {
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 96;
  const g = canvas.getContext('2d', {willReadFrequently: true});
  const draw = ch => {
    g.clearRect(0, 0, 96, 96);
    g.font = font;
    g.textBaseline = 'top';
    g.fillStyle = '#000';
    g.fillText(ch, 8, 8);
    const pixels = g.getImageData(0, 0, 96, 96).data;
    let hash = 0;
    for (let i = 0; i < pixels.length; i++) hash = (hash * 31 + pixels[i]) >>> 0;
    return hash;
  };
  const boxes = [draw('\\u0378'), draw('\\u0379')];
  return {font, same_box: boxes[0] === boxes[1],
          boxes: chars.filter(ch => boxes.includes(draw(ch)))};
}"""
# The text a Korean reader reads, and the marks of the exercise checks (helpers/checks.py) and of the course runner.
HANGUL_SAMPLE = "한국어판양자화블록레벨"
MARKS = "⏳✅❌"


@dataclass
class Lab:
    """A running JupyterLab server: where it listens, its token and its notebook folder."""
    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(lab: Lab, path: str, method: str = "GET"):
    """Call the server's REST API with the token; the decoded JSON answer, or None when empty."""
    request = urllib.request.Request(f"{lab.url}{path}", method=method,
                                     headers={"Authorization": f"token {lab.token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def log_tail(lab: Lab, chars: int = 3000) -> str:
    """The end of the server's log, for failure messages."""
    return lab.log.read_text(errors="replace")[-chars:]


def start_lab(base: Path) -> Lab:
    """Start JupyterLab on 127.0.0.1 with a random token, serving base/"notebooks" in smoke mode."""
    root, home = base / "notebooks", base / "jupyter-home"
    root.mkdir()
    # The notebooks run in notebooks/ and may read "../benchmarks" and the like: mirror the repository.
    for entry in ROOT.iterdir():
        if not entry.name.startswith(".") and entry.name not in {"notebooks", "build", "outputs", "output"}:
            (base / entry.name).symlink_to(entry)
    for name, value in LAB_SETTINGS.items():
        path = home / "lab-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # inline plots, as in the course
    env.update(COURSE_MODE="smoke", COURSE_OUTPUT_DIR=str(base / "outputs"),
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), IPYTHONDIR=str(home / "ipython"))
    port, token, log = free_port(), secrets.token_hex(24), base / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True", "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly"]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    lab = Lab(f"http://127.0.0.1:{port}", token, root, log, process)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {process.returncode}:\n{log_tail(lab)}")
        try:
            api(lab, "/api/status")
            return lab
        except OSError:
            time.sleep(0.5)
    stop_lab(lab)
    pytest.fail(f"JupyterLab did not answer within 90 s:\n{log_tail(lab)}")


def stop_lab(lab: Lab) -> None:
    """Stop the server; it shuts its kernels down on SIGTERM."""
    lab.process.terminate()
    try:
        lab.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        lab.process.kill()
        lab.process.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One JupyterLab server for the module; stopped at the end whatever happens."""
    server = start_lab(tmp_path_factory.mktemp("lab"))
    yield server
    stop_lab(server)


@pytest.fixture(scope="module")
def browser_context():
    """Debian's chromium, headless, driven by Playwright; skips with the reason when it is missing."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("chromium is not installed (no `chromium` on PATH): run `apt-get install chromium` "
                    "as root (.ci/run does this in CI)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        # One context for the module: its HTTP cache spares each page reloading JupyterLab's scripts.
        context = chromium.new_context(viewport=VIEWPORT)
        context.set_default_timeout(30_000)
        yield context
        chromium.close()


@pytest.fixture
def page(browser_context, lab):
    """A fresh browser page; afterwards the page closes and the kernels it started shut down."""
    tab = browser_context.new_page()
    yield tab
    tab.close()
    for session in api(lab, "/api/sessions"):
        api(lab, f"/api/sessions/{session['id']}", method="DELETE")


def menu(page, title: str, command: str) -> None:
    """Click a command in JupyterLab's menu bar, as a learner would."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{title}$")).click()
    page.locator(f'.lm-Menu-item[data-command="{command}"]').click()


def open_notebook(page, lab: Lab, source: Path):
    """Copy a notebook into the server's folder, open it and wait for an idle kernel; the panel."""
    shutil.copy(source, lab.root / source.name)
    page.goto(f"{lab.url}/lab/tree/{source.name}?reset&token={lab.token}")
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    panel.wait_for(timeout=120_000)
    wait_until_idle(page, 120, what="the kernel to start")
    menu(page, "View", "filebrowser:toggle-main")  # hide the file browser: the screenshots show more notebook
    return panel


def notebook_state(page) -> dict:
    """What the open notebook shows now (see NOTEBOOK_STATE_JS)."""
    return page.evaluate(NOTEBOOK_STATE_JS)


def wait_until_idle(page, timeout_s: float, done=lambda state: True,
                    what: str = "the notebook to settle") -> dict:
    """Poll until the kernel is idle, no cell is queued and done(state) holds twice in a row."""
    deadline, previous = time.monotonic() + timeout_s, False
    while time.monotonic() < deadline:
        state = notebook_state(page)
        if state["stdin"]:
            return state
        idle = state["status"] == "idle" and re.fullmatch(r"(?!No Kernel).+ \| Idle", state["kernel"])
        settled = idle and not state["queued"] and done(state)
        if settled and previous:
            return state
        previous = settled
        page.wait_for_timeout(500)
    state, shot = notebook_state(page), SCREENSHOTS / "timeout.png"
    page.screenshot(path=shot)
    pytest.fail(f"waited {timeout_s} s for {what} (screenshot {shot}): "
                f"{ {k: v for k, v in state.items() if k != 'outputs'} }")


def run_all(page, timeout_s: float) -> dict:
    """Run > Run All Cells, then wait until every cell ran, one failed or one waits for input."""
    menu(page, "Run", "runmenu:run-all")
    return wait_until_idle(page, timeout_s, lambda s: not s["unrun"] or s["errors"], "Run All Cells to finish")


def assert_ran_cleanly(state: dict) -> None:
    """Every code cell ran, none raised, none waits for input, every widget rendered."""
    assert not state["stdin"], "a cell waits for input (input() or getpass()): the notebook must not block"
    assert not state["errors"], "a cell raised:\n" + "\n\n".join(state["errors"])
    assert not state["unrun"], f"{state['unrun']} code cells did not run"
    broken = [text for text in state["outputs"] if WIDGET_FAILURE.search(text)]
    assert not broken, f"a widget did not render; the page shows: {broken}"


def image_sources(locator) -> list[str]:
    """The src (a data: URI of the PNG) of every image output inside the locator."""
    return locator.locator(".jp-OutputArea-output img").evaluate_all("imgs => imgs.map(i => i.src)")


def cell_showing(panel, text: str):
    """The first code cell whose outputs show text; fails saying which output is missing."""
    output = panel.page.locator(".jp-OutputArea-output", has_text=text)
    cell = panel.locator(".jp-CodeCell").filter(has=output).first
    assert cell.count(), f"no cell shows {text!r}"
    return cell


def screenshot(page, target, name: str) -> Path:
    """Scroll target to the top of the notebook and save the whole page as build/screenshots/<name>."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)  # let the scroll and any image decode settle before the capture
    path = SCREENSHOTS / name
    page.screenshot(path=path)
    return path


def glyphs_drawn_as_boxes(page, selector: str, chars: str) -> list[str]:
    """The characters that the page would draw as empty boxes in the font of the first element matching selector."""
    font = page.locator(selector).first.evaluate("e => { const s = getComputedStyle(e); "
                                                 "return `${s.fontSize} ${s.fontFamily}`; }")
    result = page.evaluate(GLYPHS_JS, [font, list(chars)])
    assert result["same_box"], f"the two missing code points drew differently in {font}: the check cannot see boxes"
    return result["boxes"]


def assert_glyphs_drawn(page) -> None:
    """Korean prose and the exercise marks are drawn as glyphs, not as boxes (no Korean or emoji font installed)."""
    hangul = glyphs_drawn_as_boxes(page, ".jp-RenderedMarkdown p", HANGUL_SAMPLE)
    assert not hangul, (f"Hangul renders as boxes ({''.join(hangul)}): install a Korean font, e.g. "
                        "`apt-get install fonts-noto-cjk` (README, prerequisites)")
    marks = glyphs_drawn_as_boxes(page, ".jp-Notebook .cm-content", MARKS)
    assert not marks, (f"the marks {''.join(marks)} render as boxes: install an emoji font, e.g. "
                       "`apt-get install fonts-noto-color-emoji` (README, prerequisites)")


def test_glyph_check_sees_boxes(page, lab):
    # The check itself: a private-use code point has no glyph in any font, so it must be reported as a box.
    page.goto(f"{lab.url}/lab?reset&token={lab.token}")
    page.locator("#jp-main-dock-panel").wait_for()
    result = page.evaluate(GLYPHS_JS, ["16px sans-serif", ["\U0010fffd", "a"]])
    assert result["same_box"] and result["boxes"] == ["\U0010fffd"], result


def test_harness_sees_an_unrendered_widget_a_prompt_and_a_failing_cell(page, lab, tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (
        # The text a learner sees in place of a slider when the widget manager is missing.
        'from IPython.display import display\ndisplay({"text/plain": "IntSlider(value=4)"}, raw=True)',
        "name = input('name? ')",
        "raise ValueError('boom')",
        "print('never runs')",
    )]
    nbformat.write(nb, tmp_path / "failing.ipynb")
    open_notebook(page, lab, tmp_path / "failing.ipynb")

    state = run_all(page, timeout_s=120)
    assert state["stdin"] == 1
    with pytest.raises(AssertionError, match="waits for input"):
        assert_ran_cleanly(state)

    page.locator(".jp-Stdin-input").fill("learner")
    page.locator(".jp-Stdin-input").press("Enter")
    page.locator(".jp-Stdin").wait_for(state="detached")
    state = wait_until_idle(page, 60, lambda s: s["errors"], "the failing cell")
    assert len(state["errors"]) == 1 and "ValueError: boom" in state["errors"][0]
    assert state["unrun"] == 1, "Run All stops at the failing cell"
    with pytest.raises(AssertionError, match="a cell raised"):
        assert_ran_cleanly(state)
    with pytest.raises(AssertionError, match="a widget did not render"):
        assert_ran_cleanly({**state, "errors": [], "unrun": 0})


@pytest.mark.parametrize("edition", ["", "ko"], ids=["english", "korean"])
def test_02_nf4_widget_renders_and_its_slider_redraws_the_plot(page, lab, edition):
    panel = open_notebook(page, lab, NOTEBOOKS / edition / "02_nf4.ipynb")
    if edition == "ko":
        assert_glyphs_drawn(page)
    assert_ran_cleanly(run_all(page, timeout_s=180))

    assert panel.locator(".jupyter-widgets.widget-slider").count(), "no ipywidgets slider is shown"
    bits = page.locator(".widget-slider", has=page.locator(".widget-label", has_text=re.compile(r"^bits$")))
    plot = page.locator(".jp-OutputArea-output img")
    cell = panel.locator(".jp-CodeCell").filter(has=bits).filter(has=plot).first
    assert cell.count(), "no cell shows the NF4 widget: a slider labelled 'bits' above a plot"
    before = image_sources(cell)
    slider = cell.locator(bits)
    handle = slider.locator(".noUi-handle")
    value = handle.get_attribute("aria-valuenow")
    # One keyboard step, as a learner can do it; away from the end the slider sits at.
    handle.press("ArrowLeft" if value == handle.get_attribute("aria-valuemax") else "ArrowRight")

    def redrawn(state: dict) -> bool:
        now = image_sources(cell)
        return len(now) == len(before) != 0 and now != before

    wait_until_idle(page, 60, redrawn, "the plot to change after moving the slider")
    moved = handle.get_attribute("aria-valuenow")
    assert moved != value
    assert float(slider.locator(".widget-readout").inner_text()) == float(moved)
    screenshot(page, cell, f"02_nf4_widget{'_' + edition if edition else ''}.png")


def test_05_shows_its_live_loss_plot_in_smoke_mode(page, lab):
    panel = open_notebook(page, lab, NOTEBOOKS / "05_gemma_qlora_t4.ipynb")
    assert_ran_cleanly(run_all(page, timeout_s=240))

    # The live plot is one output that the training callback redraws in place, not one per log.
    training = cell_showing(panel, "trained to step")
    assert len(image_sources(training)) == 1, "the live loss plot should be one image, updated in place"
    assert training.locator("img").first.evaluate("i => i.complete && i.naturalWidth > 100")
    # The evaluation moved to notebook 06: 05 ends with its adapter's place, not with answers.
    assert not panel.locator(".jp-OutputArea-output table", has=page.locator("th", has_text="base + adapter")).count()
    cell_showing(panel, "the adapter:")
    screenshot(page, training, "05_gemma_qlora_t4_loss.png")


@pytest.mark.parametrize("edition", ["", "ko"], ids=["english", "korean"])
def test_06_shows_the_comparison_plot_and_the_answers_side_by_side_in_smoke_mode(page, lab, edition):
    # Run after 05 in this module, 06 judges 05's adapter (the server's one output folder); alone, it trains first.
    panel = open_notebook(page, lab, NOTEBOOKS / edition / "06_did_it_learn.ipynb")
    if edition == "ko":
        assert_glyphs_drawn(page)
    assert_ran_cleanly(run_all(page, timeout_s=300))

    # The four panels (loss, ROUGE-L, P(<eos>), how the answers ended) in one figure, drawn wide enough to read.
    plot = panel.locator(".jp-CodeCell", has_text="Loss on the held-out rows").first
    assert plot.count(), "no cell draws the comparison plot"
    assert len(image_sources(plot)) == 1, "the comparison plot is not shown (or shown more than once)"
    size = plot.locator(".jp-OutputArea-output img").first.evaluate(
        "i => ({complete: i.complete, natural: i.naturalWidth, shown: i.getBoundingClientRect().width})")
    assert size["complete"] and size["natural"] >= 1000, size
    assert size["shown"] >= 0.6 * VIEWPORT["width"], f"the four-panel figure is drawn too small to read: {size}"

    answers = page.locator(".jp-OutputArea-output table", has=page.locator("th", has_text="base + adapter"))
    cell = panel.locator(".jp-CodeCell").filter(has=answers).first
    assert cell.count(), "the table of answers side by side is not shown"
    table = cell.locator(answers).first
    headers = table.locator("th").all_inner_texts()
    assert headers == ["instruction", "base", "base + adapter", "reference"], headers
    rows = table.locator("tr", has=page.locator("td"))
    assert rows.count() == 3, f"smoke mode shows SHOW = 3 answers, the table has {rows.count()} rows"
    assert all(t.strip() for t in rows.first.locator("td").all_inner_texts()), "an empty cell in the first row"
    # The note next to the table says what to look at (the ⏹ mark of an answer that ended by itself).
    look = panel.locator(".jp-MarkdownCell", has_text="⏹").first
    assert look.count() and look.is_visible(), "no markdown next to the answers says what ⏹ means"

    suffix = f"_{edition}" if edition else ""
    screenshot(page, cell, f"06_did_it_learn_answers{suffix}.png")
    screenshot(page, plot, f"06_did_it_learn_comparison{suffix}.png")


@pytest.mark.parametrize("edition", ["", "ko"], ids=["english", "korean"])
def test_05_opens_unmodified_with_readable_text_and_links_at_the_release(page, lab, edition):
    source = NOTEBOOKS / edition / "05_gemma_qlora_t4.ipynb"
    panel = open_notebook(page, lab, source)  # waits for the kernel: JupyterLab has written its metadata by then
    if edition == "ko":
        assert_glyphs_drawn(page)
    # Opening alone changes nothing: the saved kernel is the one `make` installs (scripts/sync_badges.py).
    page.wait_for_timeout(1000)
    dirty = page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty").count()
    if platform.python_version() == sync_badges.LANGUAGE_INFO["version"]:
        assert not dirty, "the notebook shows as modified as soon as it opens: run `python scripts/sync_badges.py`"
    # `<eos>` written in a cell shows as `<eos>`, not as an empty HTML tag.
    nb = nbformat.read(source, as_version=4)
    written = sum(c.source.count("<eos>") for c in nb.cells if c.cell_type == "markdown")
    shown = sum(t.count("<eos>") for t in panel.locator(".jp-RenderedMarkdown").all_inner_texts())
    assert written and shown >= written, f"`<eos>` appears {written} times in the markdown but shows {shown} times"
    # Links to the course's files open their page on GitHub at the release (relative links were dead here).
    setting = tomllib.loads((ROOT / "course.toml").read_text())
    prefix = f"https://github.com/{setting['repo']}/blob/{setting['ref']}/"
    hrefs = panel.locator(".jp-RenderedMarkdown a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    ours = f"https://github.com/{setting['repo']}/"
    own = [h for h in hrefs if h and "docs/" in h and (h.startswith(ours) or not h.startswith(("http:", "https:")))]
    assert own, "no link to docs/ found: the check would check nothing"
    for href in own:
        assert href.startswith(prefix), f"{href} does not open on GitHub at the release"
        assert (ROOT / href.removeprefix(prefix).split("#")[0]).is_file(), f"{href} names a file the course lacks"
    # A link inside the notebook scrolls to its section (a link to a Hangul heading does not: tests/test_markdown.py).
    link = panel.locator('.jp-RenderedMarkdown a[href="#under-the-hood"]:not(.jp-InternalAnchorLink)').first
    heading = panel.locator(".jp-RenderedMarkdown h2", has_text="내부 들여다보기" if edition else "Under the hood")
    link.click()
    page.wait_for_timeout(1000)
    top = heading.first.evaluate("e => e.getBoundingClientRect().top")
    assert 0 <= top < VIEWPORT["height"], f"the link to Under the hood did not scroll there (heading at y={top})"
