"""Every markdown cell renders as written: no word swallowed as an HTML tag, no emphasis left as literal stars.

JupyterLab renders markdown with marked after taking the maths out; markdown-it in CommonMark mode (HTML on) is close
enough to see the two ways a cell silently loses text. A bare `<eos>` is an unknown HTML tag, which the browser drops
("P() after the reference"). And CommonMark closes `*...*` only where the closing star is "right-flanking": after
punctuation it must be followed by a space or punctuation, so `*P(x)*가` keeps both stars as text in Korean, where a
particle follows the word directly.
"""
import re
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) + \
    sorted((ROOT / "notebooks" / "ko").glob("[0-9][0-9]_*.ipynb"))
# HTML the notebooks use on purpose; any other tag-like token is text the renderer would swallow.
ALLOWED_TAGS = {"a", "b", "br", "code", "details", "div", "em", "i", "img", "kbd", "p", "pre", "small", "span",
                "strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "thead", "tr", "u"}
TAG = re.compile(r"</?([A-Za-z][\w-]*)")
# Maths as JupyterLab takes it out before rendering markdown: $$...$$, $...$ (not \$), \(...\), \[...\].
MATH = re.compile(r"\$\$.+?\$\$|(?<![\\$])\$(?!\s).+?(?<![\s\\])\$|\\\(.+?\\\)|\\\[.+?\\\]", re.DOTALL)
HANGUL = "\uac00-\ud7a3"
# A star or underscore left in the rendered text: a star anywhere (a pair that did not close, or one alone), or an
# underscore touching Hangul or opening/closing a word (_like this_) rather than inside one (snake_case stays).
LITERAL = re.compile(rf"\*|(?<![\w])_(?=\S)|(?<=\S)_(?![\w])|_(?=[{HANGUL}])|(?<=[{HANGUL}])_")
MD = MarkdownIt("commonmark", {"html": True})


def without_math(source: str) -> str:
    """The cell's markdown with each maths span replaced by a placeholder, as JupyterLab renders it."""
    return MATH.sub("MATH", source)


def rendering_problems(source: str) -> list[str]:
    """What the renderer would lose in one markdown cell: unknown HTML tags, and stars or underscores left as text."""
    problems = []

    def walk(tokens):
        for token in tokens:
            if token.type in ("html_inline", "html_block"):
                for name in TAG.findall(token.content):
                    if name.lower() not in ALLOWED_TAGS:
                        problems.append(f"<{name}> is swallowed as an HTML tag: write it as code, `<{name}>`")
            elif token.type == "text" and LITERAL.search(token.content):
                problems.append(f"a literal * or _ shows (emphasis not closed?): {token.content.strip()[:80]!r}")
            if token.children:
                walk(token.children)

    walk(MD.parse(without_math(source)))
    return problems


@pytest.mark.parametrize("source, problem", [
    ("P(<eos>) after the reference", "<eos> is swallowed"),
    ("a <pad> token and </s>", "<pad> is swallowed"),
    ("*참조 답변 뒤의 P(x)*가 올라갑니다", "a literal * or _ shows"),
    ("*one outlier (60)*은 크다", "a literal * or _ shows"),
    ("_오프셋_은", "a literal * or _ shows"),
    ("2 * 3 stars alone", "a literal * or _ shows"),
])
def test_swallowed_tags_and_unclosed_emphasis_are_found(source, problem):
    assert any(p.startswith(problem) for p in rendering_problems(source)), rendering_problems(source)


@pytest.mark.parametrize("source", [
    "P(`<eos>`) after the reference, and <em>강조</em>가 됩니다<br>",
    "*emphasis*, **bold**, _also_, and `a * b` in code",
    "<details><summary>more</summary>\n\ntext\n</details>",
    "maths: $x_i * y_j$ and $$\\sum_k a_k$$, a file name like sample_dolly_ko.jsonl, `snake_case`",
    "**강조** 뒤에 공백을 두면 닫힙니다",
    "<https://huggingface.co/google/gemma-2b>에서 동의하세요",
])
def test_well_formed_markdown_passes(source):
    assert rendering_problems(source) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT / "notebooks").as_posix())
def test_every_markdown_cell_renders_as_written(path):
    nb = nbformat.read(path, as_version=4)
    found = [f"cell {cell.get('id')!r}: {problem}" for cell in nb.cells if cell.cell_type == "markdown"
             for problem in rendering_problems(cell.source)]
    assert not found, "\n".join(found)


# The repository's own documents (tracked or not), not those of caches and environments (.pytest_cache, .venv).
DOCUMENTS = sorted(p for p in ROOT.glob("**/*.md") if not any(part.startswith(".") or part in ("build", "node_modules")
                                                               for part in p.relative_to(ROOT).parts))


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_word_of_a_document_is_swallowed_as_a_tag(path):
    # GitHub drops unknown HTML tags too: the post's title "<PEFT> QLoRA ..." would lose its first word.
    found = [p for p in rendering_problems(path.read_text()) if "swallowed" in p]
    assert not found, "\n".join(found)


# In-notebook links. JupyterLab 4 (@jupyterlab/rendermime's headerAnchors and createHeaderId) gives each rendered
# heading the id of its text with every space replaced by "-", case kept ("## Under the hood" -> "Under-the-hood"),
# and keeps an explicit <a id="..."> anchor; a click on "#name" scrolls to the element of the page with that id. Its
# markdown renderer percent-encodes a non-ASCII href ("#내부-들여다보기" -> "#%EB%82%B4..."), and the click looks up
# that encoded name, which no heading has: a link to a Hangul heading does nothing in JupyterLab (tried in Chromium).
# So a target must be ASCII: the course puts <a id="under-the-hood"></a> above the heading in both editions.
ANCHOR_ID = re.compile(r"""<a\s[^>]*\bid\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def heading_id(inline) -> str:
    """The id JupyterLab gives a heading: its rendered text (no markup) with every space replaced by '-'."""
    text = "".join(t.content if t.type in ("text", "code_inline") else "\n" if t.type == "softbreak" else ""
                   for t in inline.children or [])
    return text.replace(" ", "-")


def anchors_and_links(cells: list[str]) -> tuple[set[str], list[str]]:
    """The ids a notebook's markdown cells define (headings and <a id>), and the '#...' targets its links point to."""
    ids, links = set(), []
    for source in cells:
        tokens = MD.parse(without_math(source))
        for i, token in enumerate(tokens):
            if token.type == "heading_open":
                ids.add(heading_id(tokens[i + 1]))
            if token.type in ("html_block", "inline"):
                ids.update(ANCHOR_ID.findall(token.content))
            for child in token.children or []:
                href = child.attrGet("href") if child.type == "link_open" else None
                if href and href.startswith("#"):
                    links.append(unquote(href[1:]))  # markdown-it percent-encodes Hangul; the id is the text
    return ids, links


def dead_links(cells: list[str]) -> list[str]:
    """The in-notebook links ('](#name)') of a notebook's markdown cells that no heading or anchor of it defines."""
    ids, links = anchors_and_links(cells)
    return [f"#{link}" + ("" if link.isascii() else " (not ASCII: JupyterLab cannot follow it)")
            for link in links if link not in ids or not link.isascii()]


def test_dead_in_notebook_links_are_found():
    cells = [("# Intro\nsee [below](#Under-the-hood), [the code](#code-part), [lower case](#under-the-hood), "
              "[한국어](#내부-들여다보기), [missing](#nowhere)"),
             "## Under the hood\n\ntext", '<a id="code-part"></a>\n**The code.** text', "## 내부 들여다보기"]
    assert dead_links(cells) == ["#under-the-hood", "#내부-들여다보기 (not ASCII: JupyterLab cannot follow it)",
                                 "#nowhere"]
    assert dead_links(["## The `format_prompt` *function*\n[it](#The-format_prompt-function)"]) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT / "notebooks").as_posix())
def test_every_in_notebook_link_has_its_heading_or_anchor(path):
    nb = nbformat.read(path, as_version=4)
    cells = [cell.source for cell in nb.cells if cell.cell_type == "markdown"]
    assert not dead_links(cells), f"links to no heading or <a id> of the notebook: {dead_links(cells)}"
