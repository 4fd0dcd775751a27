"""README.md's five-minute tour runs, and prints what the README says it prints.

The tour is the README's console blocks: each `$ genforge ...` line and the output pasted under
it. This runs every command in order in an empty folder, as a user would (`python -m genforge`,
stdout and stderr together, progress bars left out), with budgets shrunk for CI (SHRINK below:
training by steps instead of minutes, fewer samples, a shorter latent search, a smaller detector
training set), and checks that each exits 0 and prints the same lines as the README, word for
word once numbers are replaced by `#` (and the verdict and precision words, which depend on the
budget and the CPU, by placeholders). A README edited without rerunning the tour, or a command
whose output changed without the README following, fails here.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^(```+|~~~+)\s*(\w*)")
PROGRESS = re.compile(r"\d+%\|")  # a tqdm bar: the README leaves them out


@dataclass
class Step:
    """One `$ genforge ...` line of the README and the output lines under it."""
    line: int
    command: str
    expected: list[str] = field(default_factory=list)


def tour(text: str) -> list[Step]:
    """The steps of every console block of a Markdown text, in order."""
    steps, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        opened = FENCE.match(line.strip())
        if fence is None:
            if opened and opened.group(2) == "console":
                fence = opened.group(1)
            continue
        if line.strip() == fence:
            fence = None
        elif line.startswith("$ "):
            steps.append(Step(number, line[2:].strip()))
        elif steps and line.strip():
            steps[-1].expected.append(line)
    return steps


def _set(tokens: list[str], flag: str, value: str) -> list[str]:
    """tokens with `flag value` (replacing the flag's value if it is there)."""
    if flag in tokens:
        i = tokens.index(flag)
        return tokens[:i + 1] + [value] + tokens[i + 2:]
    return tokens + [flag, value]


def shrink(tokens: list[str]) -> list[str]:
    """A tour command with a CI budget; its output has the same lines, other numbers."""
    command = tokens[1] if len(tokens) > 1 else ""
    for budget in ("--minutes", "--epochs", "--steps"):  # train, detect train: ten steps
        if budget in tokens:
            i = tokens.index(budget)
            tokens = tokens[:i] + ["--steps", "10"] + tokens[i + 2:]
    if command == "eval":
        tokens = _set(tokens, "--n", "200")
    if command == "edit":
        for flag, value in (("--search-steps", "10"), ("--restarts", "1"), ("--candidates", "8")):
            tokens = _set(tokens, flag, value)
    if command == "detect" and "train" in tokens:
        tokens = _set(tokens, "--fakes-per-source", "50")
        if "--real" in tokens:  # a whole data set or split -> its first 1000 training images
            real = tokens[tokens.index("--real") + 1]
            real += ":train" if ":" not in real else ""
            if real.count(":") == 1:
                tokens = _set(tokens, "--real", real + ":0-999")
    return tokens


def skeleton(line: str) -> str:
    """A line's words: numbers -> #, budget-dependent words -> placeholders, spacing collapsed."""
    line = re.sub(r":(train|test):\d+-\d+", r":\1", line)  # a data slice the CI budget cut: the split
    line = re.sub(r";? ?soft: [^;)]*", "", line)  # the soft note depends on the images judged
    line = re.sub(r"\s*\(\s*\)", "", line)
    line = re.sub(r"\b(generated/edited|real)\b", "VERDICT", line)
    line = re.sub(r"\bkey [0-9a-f]{16}\b", "key KEY", line)  # each machine signs with its own key
    line = re.sub(r"\b(fp32|bf16)\b", "PRECISION", line)
    line = re.sub(r"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|\bnan\b|\binf\b", "#", line)
    return " ".join(line.split())


def optional(line: str) -> bool:
    """Lines that come or go with the images judged, not with the code."""
    return "look blurred or resized" in line


def printed(raw: str) -> list[str]:
    """What a terminal shows once progress bars are gone: the non-blank lines."""
    lines = re.split(r"[\r\n]", raw)
    return [line for line in lines if line.strip() and not PROGRESS.search(line)]


def run(command: str, cwd: Path) -> tuple[int, str]:
    tokens = shlex.split(command, comments=True)
    assert tokens[0] == "genforge", f"the tour runs genforge only: {command}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # stdout and stderr in the order printed
    done = subprocess.run([sys.executable, "-m", "genforge", *shrink(tokens)[1:]], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    return done.returncode, done.stdout


def mismatch(expected: list[str], actual: list[str]) -> str | None:
    """None when the two outputs have the same shape, else what differs."""
    want = [skeleton(line) for line in expected if not optional(line)]
    got = [skeleton(line) for line in actual if not optional(line)]
    if want == got:
        return None
    for i, (w, g) in enumerate(zip(want, got)):
        if w != g:
            return f"line {i + 1}: README shows\n  {w}\nthe command printed\n  {g}"
    longer, name = (want, "README shows") if len(want) > len(got) else (got, "the command printed")
    return f"{name} {abs(len(want) - len(got))} more line(s), first:\n  {longer[min(len(want), len(got))]}"


# --- the README ---------------------------------------------------------------------------------

def test_readme_has_a_tour_of_every_command():
    steps = tour(README.read_text(encoding="utf-8"))
    commands = [shlex.split(step.command, comments=True)[1] for step in steps]
    for name in ("train", "sample", "eval", "edit", "detect"):
        assert name in commands, f"the README's tour has no `genforge {name}`"
    assert all(step.command.startswith("genforge ") for step in steps)


@pytest.mark.slow  # about a minute on 2 cores (CI runs it: `make test` runs every test)
def test_readme_tour_runs_and_prints_what_it_shows(tmp_path):
    if not (Path(os.environ["GENFORGE_DATA"]) / "mnist").is_dir():
        pytest.skip("MNIST not in GENFORGE_DATA")
    for step in tour(README.read_text(encoding="utf-8")):
        code, output = run(step.command, tmp_path)
        shown = "\n".join(printed(output)[-20:])
        assert code == 0, f"README.md:{step.line}: `{step.command}` exited {code}:\n{shown}"
        problem = mismatch(step.expected, printed(output))
        assert problem is None, f"README.md:{step.line}: `{step.command}`: {problem}\n\nit printed:\n{shown}"


# --- the checker itself -------------------------------------------------------------------------

PAGE = """Intro.

```console
$ genforge sample runs/x --n 100 --grid --out grid.png
wrote 100 images to grid.png

$ genforge detect det mnist:test:0-1
probability that the image is generated or edited (verdict at threshold 0.5):
 0.0123  real              mnist:test:0
 0.9876  generated/edited  mnist:test:1
2 judged: 1 generated/edited, 1 real
```

```sh
genforge info runs/x
```
"""


def test_the_tour_is_read_from_console_blocks_only():
    steps = tour(PAGE)
    assert [step.command for step in steps] == ["genforge sample runs/x --n 100 --grid --out grid.png",
                                                "genforge detect det mnist:test:0-1"]
    assert steps[0].expected == ["wrote 100 images to grid.png"] and len(steps[1].expected) == 4


def test_shapes_match_on_numbers_and_verdicts_but_not_on_words():
    expected = tour(PAGE)[1].expected
    other_numbers = ["probability that the image is generated or edited (verdict at threshold 0.25):",
                     " 0.7000  generated/edited  mnist:test:0  (soft: blurred or resized? the verdict is weak)",
                     " 0.1000  real              mnist:test:1", "2 judged: 1 generated/edited, 1 real",
                     "1 look blurred or resized (softer than 99% of ...)"]
    assert mismatch(expected, other_numbers) is None
    reworded = other_numbers[:3] + ["2 images judged: 1 generated/edited, 1 real"]
    assert "line 4" in mismatch(expected, reworded)
    assert "1 more line" in mismatch(expected, other_numbers[:3])
    assert "1 more line" in mismatch(expected, other_numbers + ["wrote verdicts.json"])


def test_ci_budgets_replace_the_readme_budgets():
    assert shrink(shlex.split("genforge train --model cgan --dataset mnist --minutes 2 --out runs/t")) == \
        shlex.split("genforge train --model cgan --dataset mnist --steps 10 --out runs/t")
    assert shrink(shlex.split("genforge train --model vae --steps 1500 --out runs/t")) == \
        shlex.split("genforge train --model vae --steps 10 --out runs/t")
    assert shrink(shlex.split("genforge eval runs/t --n 2000")) == shlex.split("genforge eval runs/t --n 200")
    assert shrink(shlex.split("genforge eval runs/t")) == shlex.split("genforge eval runs/t --n 200")
    assert shrink(shlex.split("genforge detect train --real mnist:train --fake runs/t --out d --minutes 1")) == \
        shlex.split("genforge detect train --real mnist:train:0-999 --fake runs/t --out d --steps 10 "
                    "--fakes-per-source 50")
    assert printed("a\rb 50%|##   | 1/2\r\n\nc\n") == ["a", "c"]
