"""BENCHMARKS.md is written block by block by the bench scripts (`write_block`) and by hand
around them; a hand edit once cut half the file away unnoticed. These checks catch that."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- (\S+):(start|end) -->")
# The blocks the summary table and the README cite; each comes from a bench script.
CITED = ("families:mnist", "families:fashion-mnist", "detect", "edit:beta-vae-mnist", "edit:cvae-mnist",
         "edit:cgan-mnist", "edit:sngan-mnist", "edit:beta-vae-fashion-mnist", "edit:cvae-fashion-mnist",
         "edit:cgan-fashion-mnist", "edit:sngan-fashion-mnist", "throughput", "race:mnist",
         "race:fashion-mnist", "eval-speed", "inpaint-trial", "softness:mnist", "softness:fashion-mnist",
         "mixture-fit", "prior-sweep:gmm-max-codes")


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


def test_benchmarks_md_blocks_are_paired_and_complete():
    names = blocks((ROOT / "BENCHMARKS.md").read_text())
    assert len(names) == len(set(names)), "a block appears twice"
    missing = [name for name in CITED if name not in names]
    assert not missing, f"BENCHMARKS.md lost the blocks {missing}"


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
