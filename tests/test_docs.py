"""BENCHMARKS.md is written block by block by the bench scripts (`write_block`) and by hand
around them; a hand edit once cut half the file away unnoticed. These checks catch that, and
keep the summary tables at the top honest: every row says what it measured, against which
target, where, when and how, and cites a block (or trial section) that exists."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
MARKER = re.compile(r"<!-- (\S+):(start|end) -->")
HEADING = re.compile(r"^(#{1,6}) (.+)$", re.M)
LINK = re.compile(r"\[([^\]]+)\]\(#([^)\s]+)\)")
# The blocks the summary tables and the README cite; each comes from a bench script. The summary
# may cite only blocks listed here, so a block that disappears with its summary row is caught too.
CITED = ("throughput", "watermark", "throughput-cuda", "colour-throughput", "serve-load", "distributed-cpu", "eval-speed", "eval-speed-emoji", "families:emoji-32",
         "families:emoji-64", "colour-edit:emoji", "detect:emoji-32", "race:mnist", "race:fashion-mnist",
         "families:mnist", "families:fashion-mnist", "recall-ceiling:cvae-gan-fashion-mnist",
         "edit:beta-vae-mnist", "edit:cvae-mnist", "edit:cgan-mnist", "edit:sngan-mnist",
         "edit:beta-vae-fashion-mnist", "edit:cvae-fashion-mnist", "edit:cgan-fashion-mnist",
         "edit:sngan-fashion-mnist", "edit:cvae-gan-fashion-mnist", "edit:beta-vae-beta0.1-fashion-mnist",
         "edit:cgan-bf16-fashion-mnist", "class-change:autoencoders", "inpaint-trial", "detect",
         "detect:fashion-mnist", "softness:mnist", "softness:fashion-mnist", "mixture-fit",
         "prior-sweep:gmm-max-codes", "prior-sweep:families-32-dim-codes",
         "prior-sweep:cvae-gan-lat128-fashion-mnist")
# One summary table per area, each with these columns.
AREAS = ("Throughput", "Sample quality", "Edits", "Detection", "Latent priors", "Provenance")
COLUMNS = ["what is measured", "target", "measured", "met?", "machine", "date", "command", "block"]
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def blocks(text: str) -> list[str]:
    """Names of the well-formed blocks, in order; raises on a start without its end or nesting."""
    names, open_name = [], None
    for match in MARKER.finditer(text):
        name, kind = match.groups()
        if kind == "start":
            assert open_name is None, f"block {name!r} starts inside block {open_name!r}"
            open_name = name
        else:
            assert open_name == name, f"block {name!r} ends but {open_name!r} is open"
            names.append(name)
            open_name = None
    assert open_name is None, f"block {open_name!r} never ends"
    return names


def slugify(title: str) -> str:
    """A heading's anchor as Python-Markdown's toc extension (the MkDocs site) makes it; the same
    as GitHub's for headings without runs of spaces or punctuation."""
    title = re.sub(r"[^\w\s-]", "", title.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", title)


def anchors(text: str) -> list[tuple[int, str, str]]:
    """(offset, title, anchor) of every heading; a repeated anchor gets _1, _2, ... as in toc."""
    seen, out = set(), []
    for match in HEADING.finditer(text):
        base = anchor = slugify(match.group(2))
        n = 0
        while anchor in seen:
            n += 1
            anchor = f"{base}_{n}"
        seen.add(anchor)
        out.append((match.start(), match.group(2), anchor))
    return out


def block_anchor(text: str, name: str) -> str:
    """The anchor of the heading that opens block `name` (its first line after the marker)."""
    start = text.index(f"<!-- {name}:start -->\n") + len(f"<!-- {name}:start -->\n")
    found = [anchor for offset, _, anchor in anchors(text) if offset == start]
    assert found, f"block {name!r} does not open with a heading"
    return found[0]


def summary_tables(text: str) -> dict[str, list[list[str]]]:
    """The rows (lists of cells) of each area's table in the "## Summary" section."""
    summary = text[text.index("\n## Summary\n"):]
    summary = summary[:summary.index("\n## ", 1)]
    tables = {}
    for part in re.split(r"^### ", summary, flags=re.M)[1:]:
        title, _, body = part.partition("\n")
        lines = [line for line in body.splitlines() if line.startswith("|")]
        cells = [[cell.strip() for cell in line.strip().strip("|").split(" | ")] for line in lines]
        assert cells[0] == COLUMNS, f"summary table {title!r} has the columns {cells[0]}"
        assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[1]), f"summary table {title!r} lacks its header rule"
        tables[title.strip()] = cells[2:]
    return tables


@pytest.fixture(scope="module")
def text() -> str:
    return BENCHMARKS.read_text()


def test_benchmarks_md_blocks_are_paired_and_complete(text):
    names = blocks(text)
    assert len(names) == len(set(names)), "a block appears twice"
    missing = [name for name in CITED if name not in names]
    assert not missing, f"BENCHMARKS.md lost the blocks {missing}"


def test_every_marker_is_one_start_and_one_end_that_write_block_can_find(text):
    # bench/common.py write_block replaces text between the first start and the first end marker of a
    # name: each must occur once, start before end, or a re-run would append a second copy.
    for name in blocks(text):
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        assert text.count(start) == 1 and text.count(end) == 1, name
        assert text.index(start) < text.index(end), name


def test_block_check_catches_a_cut():
    good = "<!-- a:start -->\nx\n<!-- a:end -->\n<!-- b:start -->\ny\n<!-- b:end -->\n"
    assert blocks(good) == ["a", "b"]
    cut = good.replace("<!-- a:end -->\n<!-- b:start -->\n", "")
    try:
        blocks(cut)
    except AssertionError as error:
        assert "'b'" in str(error) and "'a'" in str(error)
    else:
        raise AssertionError("a cut block went unnoticed")


def test_benchmarks_md_opens_with_the_summary_then_blocks_then_trials(text):
    headings = [title for _, title, _ in anchors(text)]
    assert headings[:2] == ["Benchmarks", "Summary"]
    first_block = text.index(":start -->")
    assert text.index("\n## Summary\n") < text.index("\n## Contents\n") < first_block
    # the trials follow the benchmark blocks of the suite
    trials = text.index("\n## Trials\n")
    for name in ("families:mnist", "detect", "mixture-fit", "edit:cgan-mnist"):
        assert text.index(f"<!-- {name}:start -->") < trials, name
    for name in ("sweep:gan-mnist", "inpaint-trial", "recall-ceiling:cvae-gan-fashion-mnist"):
        assert text.index(f"<!-- {name}:start -->") > trials, name


def test_summary_has_one_table_per_area_and_every_row_is_filled(text):
    tables = summary_tables(text)
    assert list(tables) == list(AREAS)
    for area, rows in tables.items():
        assert rows, f"the {area} table is empty"
        for row in rows:
            assert len(row) == len(COLUMNS), f"{area}: a row has {len(row)} cells: {row[0]!r}"
            cell = dict(zip(COLUMNS, row))
            for column in ("what is measured", "target", "measured", "met?", "machine", "command", "block"):
                assert cell[column], f"{area}: {cell['what is measured']!r} has an empty {column!r} cell"
            assert DATE.search(cell["date"]) or cell["date"] == "not recorded", (area, cell["date"])
            assert cell["met?"].startswith("-") or re.search(r"\b(met|missed)\b", cell["met?"]), (
                f"{area}: {cell['what is measured']!r} says {cell['met?']!r}")
            # "-" in met? exactly where the project set no target
            assert cell["met?"].startswith("-") == cell["target"].startswith("none set"), (area, row[0])


def test_summary_cites_blocks_that_exist_under_their_own_anchor(text):
    names, cited = set(blocks(text)), set()
    for area, rows in summary_tables(text).items():
        for row in rows:
            block_cell = row[COLUMNS.index("block")]
            links = LINK.findall(block_cell)
            assert links or block_cell.startswith("none"), f"{area}: {row[0]!r} cites no block"
            for label, anchor in links:
                if label.startswith("trial:"):  # a hand-written trial section, not a block
                    assert anchor in {a for _, _, a in anchors(text)}, f"{area}: no heading #{anchor}"
                    continue
                assert label in names, f"{area}: {row[0]!r} cites the missing block {label!r}"
                assert anchor == block_anchor(text, label), (
                    f"{area}: the link to {label!r} goes to #{anchor}, its heading is #{block_anchor(text, label)}")
                cited.add(label)
    assert cited <= set(CITED), f"add {sorted(cited - set(CITED))} to CITED"
    assert len(cited) >= 20


def test_every_anchor_link_in_benchmarks_md_has_its_heading(text):
    # The contents list and the summary link headings by anchor; a re-run that renames a block's
    # heading (for instance with another image count) must update them.
    known = {anchor for _, _, anchor in anchors(text)}
    broken = sorted({anchor for _, anchor in LINK.findall(text) if anchor not in known})
    assert not broken, f"links to missing headings: {broken}"


def test_anchors_match_the_docs_site():
    markdown = pytest.importorskip("markdown")  # the MkDocs site renders with Python-Markdown's toc
    sample = ("# Edits: beta-vae latent_dim=32 beta=0.1 on fashion-mnist (1000 test images)\n\n"
              "## Trial: `cvae-gan`, a VAE-GAN for Fashion-MNIST recall (15 minutes)\n\n"
              "## Latent-prior mixture fit: genforge's EM against scikit-learn's\n\n"
              "## Edits: cgan on mnist (200 test images)\n\n## Edits: cgan on mnist (200 test images)\n")
    html = markdown.markdown(sample, extensions=["toc"])
    assert re.findall(r'id="([^"]+)"', html) == [anchor for _, _, anchor in anchors(sample)]
