"""The docs cannot drift from the code: every command, flag, make target, link and headline
number that README.md and docs/ name exists.

A flag renamed or a command moved leaves the docs wrong without anyone noticing. This reads each
command line the docs show (code blocks; in console blocks the `$ ` lines; inline code that
starts with `genforge` or `make`), resolves its sub-command (and the verb of `genforge data`)
against the real parser (`genforge.cli.build_parser()`, no subprocess), and checks each `--flag`
on it and each literal value of a flag with fixed choices. It also checks the flag tables of
the user-guide pages (docs/guide/COMMAND.md) against their command and that each page names
every flag of its command, that a flag named alone in inline code belongs to some command,
that every `make` target and variable named is in the Makefile, that the README's links lead
to files that exist, and that each number of the README's headline table is written in the
BENCHMARKS.md blocks its row cites.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from genforge.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
INLINE = re.compile(r"(`+)(.+?)\1")
FLAG = re.compile(r"--[a-z][a-z0-9-]*")
PLACEHOLDER = re.compile(r"^(<.*>|\{.*\}|[A-Z][A-Z0-9_]*(\.\.\.)?|.*\.\.\.|\.\.\.)$")
# Shell that separates commands on one line; a bare | with spaces around it is a pipe.
SEPARATORS = re.compile(r"\s(?:&&|\|\||;|\|)\s")
NOT_CODE = {"python", "py", "pycon", "json", "yaml", "yml", "toml", "diff"}


@dataclass(frozen=True)
class Command:
    """One command line the docs show, with where it is."""
    where: str  # file:line
    text: str
    tool: str  # "genforge" or "make"


def doc_files() -> list[Path]:
    files = [ROOT / "README.md"]
    files += sorted((ROOT / "docs").rglob("*.md")) if (ROOT / "docs").is_dir() else []
    return files


def _tool_at(tokens: list[str]) -> tuple[str, int] | None:
    """("genforge" | "make", index) of the first token that runs one, else None."""
    for i, token in enumerate(tokens):
        if token == "genforge" or token.endswith("/genforge"):
            return "genforge", i
        if token == "make" and (i == 0 or tokens[i - 1] in ("$", "sudo")):
            return "make", i
    return None


def _split_shell(line: str) -> list[tuple[str, list[str]]]:
    """The commands of one shell line, each from its tool's name on (comments cut)."""
    out = []
    for part in SEPARATORS.split(line):
        try:
            tokens = shlex.split(part, comments=True)
        except ValueError:  # an unbalanced quote in prose: fall back to words
            tokens = part.split("#")[0].split()
        found = _tool_at(tokens)
        if found:
            tool, i = found
            out.append((tool, tokens[i + 1:]))
    return out


def _inline_commands(name, lines: list[tuple[int, str]]) -> list[tuple[Command, list[str]]]:
    """Commands in the inline code of one paragraph (a span may wrap onto the next line)."""
    out, text, starts = [], "", []
    for number, line in lines:
        starts.append((len(text), number))
        text += line + " "
    for match in INLINE.finditer(text):
        span = match.group(2).replace("\\|", "|").strip()
        if span.startswith(("genforge ", "make ")):
            number = max(n for offset, n in starts if offset <= match.start())
            for tool, tokens in _split_shell(span):
                out.append((Command(f"{name}:{number}", span, tool), tokens))
    return out


def commands_in(path: Path, text: str | None = None) -> list[tuple[Command, list[str]]]:
    """(command, tokens after the tool's name) for every command line in a Markdown file:
    in code blocks (in a console block only the `$ ` lines), and in inline code."""
    text = path.read_text(encoding="utf-8") if text is None else text
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    out, fence, lang, pending, paragraph = [], None, "", "", []
    for number, line in enumerate(text.splitlines(), 1):
        opened = FENCE.match(line)
        if fence is None and (opened or not line.strip()):
            out += _inline_commands(name, paragraph)
            paragraph = []
        if opened and fence is None:
            fence, lang = opened.group(1), opened.group(2).lower()
            continue
        if fence is None:
            paragraph.append((number, line))
            continue
        if line.strip().startswith(fence) and not line.strip()[len(fence):].strip():
            fence, pending = None, ""
            continue
        if lang in NOT_CODE:
            continue
        if lang == "console" and not pending:
            if not line.startswith("$ "):
                continue  # output, not a command
            line = line[2:]
        if line.rstrip().endswith("\\"):  # a command continued on the next line
            pending += line.rstrip()[:-1] + " "
            continue
        line, pending = pending + line, ""
        for tool, tokens in _split_shell(line):
            out.append((Command(f"{name}:{number}", line.strip(), tool), tokens))
    return out + _inline_commands(name, paragraph)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _clean(token: str) -> str:
    """A token of usage text or prose without its brackets and trailing punctuation."""
    token = token.strip("[]()`'\",;")
    return token if token.endswith("...") else token.rstrip(".:")


def _values_taken(action: argparse.Action, tokens: list[str], i: int) -> int:
    """How many of tokens[i:] are the values of `action` (given as a flag without =value)."""
    nargs = action.nargs
    if nargs == 0 or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                                         argparse._StoreConstAction, argparse._HelpAction,
                                         argparse._VersionAction, argparse._CountAction)):
        return 0
    free = 0
    while i + free < len(tokens) and not _clean(tokens[i + free]).startswith("-"):
        free += 1
    if nargs is None:
        return min(1, free)
    if nargs == "?":
        return min(1, free)
    if nargs in ("*", "+", argparse.REMAINDER):
        return free
    return min(int(nargs), free)


def _check_value(flag: str, action: argparse.Action, value: str) -> list[str]:
    """A literal value of a flag with fixed choices must be one of them (placeholders pass)."""
    if not action.choices or not value or PLACEHOLDER.match(value) or "..." in value:
        return []
    allowed = {str(choice) for choice in action.choices}
    wrong = [v for v in value.split("|") if v and v not in allowed]
    return [f"{flag} {value!r}: not one of {sorted(allowed)}" for _ in wrong[:1]]


def check_genforge(tokens: list[str], parser: argparse.ArgumentParser | None = None,
                   prog: str = "genforge") -> list[str]:
    """Problems with one `genforge` command line (the tokens after `genforge`)."""
    parser = parser or build_parser()
    problems, i, chosen = [], 0, False
    while i < len(tokens):
        token = _clean(tokens[i])
        i += 1
        if not token:
            continue
        if token.startswith("-") and not re.fullmatch(r"-[\d.]+", token):
            flag, has_value, value = token.partition("=")
            action = parser._option_string_actions.get(flag)
            if action is None:
                problems.append(f"{prog} has no flag {flag}")
                continue
            if has_value:
                problems += _check_value(flag, action, value)
                continue
            taken = _values_taken(action, tokens, i)
            if taken:
                problems += _check_value(flag, action, _clean(tokens[i]))
            i += taken
            continue
        commands = _subcommands(parser)
        if commands and not chosen:
            if PLACEHOLDER.match(token):
                return problems  # `genforge COMMAND --help`: nothing to resolve against
            names = token.split("/")  # `genforge sample/eval --prior none` names both
            unknown = [name for name in names if name not in commands]
            if unknown:
                return problems + [f"{prog} has no command {unknown[0]!r} (it has {', '.join(commands)})"]
            rest = tokens[i:]
            for name in names:
                problems += check_genforge(rest, commands[name], f"{prog} {name}")
            return problems
        # a positional argument (a run directory, detect's `train`, a data set name, ...)
    return problems


def makefile() -> tuple[set[str], set[str]]:
    """(targets, variables) of the Makefile."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set()
    for match in re.finditer(r"^([A-Za-z0-9_.%/$() -]+?)\s*:(?![=:])", text, re.M):
        targets.update(match.group(1).split())
    variables = set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)\s*[?:+]?=", text, re.M))
    return targets, variables


def check_make(tokens: list[str], targets: set[str], variables: set[str]) -> list[str]:
    problems = []
    for token in map(_clean, tokens):
        if not token or token.startswith("-"):
            continue
        if "=" in token:
            name = token.split("=")[0]
            if name not in variables:
                problems.append(f"the Makefile has no variable {name}")
        elif not PLACEHOLDER.match(token) and token not in targets:
            problems.append(f"the Makefile has no target {token!r}")
    return problems


def problems_in(path: Path, text: str | None = None) -> list[str]:
    targets, variables = makefile()
    out = []
    for command, tokens in commands_in(path, text):
        found = (check_genforge(tokens) if command.tool == "genforge"
                 else check_make(tokens, targets, variables))
        out += [f"{command.where}: {problem}  [{command.text}]" for problem in found]
    return out


def guide_table_flags(text: str) -> list[tuple[int, str]]:
    """(line, flag) of each flag named in the first cell of a table row of a guide page."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("|") and not re.match(r"^\|\s*:?-", line):
            first = line.split("|")[1]
            out += [(number, flag) for flag in FLAG.findall(first)]
    return out


def command_flags(name: str) -> set[str]:
    """Every option string of a command, with those of its verbs (`genforge data list`, ...)."""
    parser = _subcommands(build_parser())[name]
    flags = set(parser._option_string_actions)
    for verb in _subcommands(parser).values():
        flags |= set(verb._option_string_actions)
    return flags


# --- the docs as they are ---------------------------------------------------------------------

def test_every_genforge_and_make_command_in_the_docs_exists():
    files = doc_files()
    found = sum(len(commands_in(path)) for path in files)
    assert found >= 5, f"only {found} command lines found in {[str(f) for f in files]}"
    problems = [problem for path in files for problem in problems_in(path)]
    assert not problems, "\n".join(problems)


def test_the_readme_names_its_commands_and_make_targets():
    commands = commands_in(ROOT / "README.md")
    named = {tokens[0] for command, tokens in commands if command.tool == "make" and tokens}
    assert {"demo", "test"} <= named, f"README names the make targets {sorted(named)}"
    subcommands = {tokens[0] for command, tokens in commands if command.tool == "genforge" and tokens}
    assert {"train", "sample", "eval", "edit", "detect"} <= subcommands, sorted(subcommands)


def test_guide_flag_tables_name_flags_of_their_command():
    guide = ROOT / "docs" / "guide"
    pages = sorted(guide.glob("*.md")) if guide.is_dir() else []
    if not pages:
        pytest.skip("docs/guide/ has no pages yet")
    commands = _subcommands(build_parser())
    problems = []
    for page in pages:
        if page.stem not in commands:
            continue
        flags = command_flags(page.stem)
        for number, flag in guide_table_flags(page.read_text(encoding="utf-8")):
            if flag not in flags:
                problems.append(f"docs/guide/{page.name}:{number}: genforge {page.stem} has no flag {flag}")
    assert not problems, "\n".join(problems)


def test_every_command_has_a_guide_page_that_names_each_of_its_flags():
    guide = ROOT / "docs" / "guide"
    if not guide.is_dir():
        pytest.skip("docs/guide/ does not exist yet")
    problems = []
    for name in _subcommands(build_parser()):
        page = guide / f"{name}.md"
        if not page.exists():
            problems.append(f"no page docs/guide/{name}.md for `genforge {name}`")
            continue
        named = set(FLAG.findall(page.read_text(encoding="utf-8")))
        long_flags = {flag for flag in command_flags(name) if flag.startswith("--")}
        missing = sorted(long_flags - named - {"--help"})
        if missing:
            problems.append(f"docs/guide/{name}.md does not name {', '.join(missing)}")
    assert not problems, "\n".join(problems)


def bench_flags() -> set[str]:
    """The flags of the benchmark scripts (bench/), which the development pages name too."""
    flags = set()
    for script in (ROOT / "bench").rglob("*.py"):
        flags |= set(re.findall(r"add_argument\(\s*[\"'](--[a-z][a-z0-9-]*)", script.read_text(encoding="utf-8")))
    return flags


def torchrun_flags() -> set[str]:
    """The flags of torchrun, the launcher that the page on training across GPUs documents."""
    from torch.distributed.run import get_args_parser
    return {flag for action in get_args_parser()._actions for flag in action.option_strings}


def known_flags() -> set[str]:
    known = bench_flags() | torchrun_flags()
    for name in _subcommands(build_parser()):
        known |= command_flags(name)
    return known


def lone_flag_problems(path: Path, text: str, known: set[str]) -> list[str]:
    """Flags named alone in inline code (`--hybrid`) that no command has."""
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        for flag in re.findall(r"`(--[a-z][a-z0-9-]*)", line):
            if flag not in known:
                problems.append(f"{path.name}:{number}: no command has the flag {flag}")
    return problems


def test_every_flag_named_alone_is_a_flag_of_some_command():
    known = known_flags()
    problems = [problem for path in doc_files()
                for problem in lone_flag_problems(path, path.read_text(encoding="utf-8"), known)]
    assert not problems, "\n".join(problems)


def test_the_readme_links_to_files_that_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert local, "the README links nothing"
    missing = sorted({link for link in local if not (ROOT / link).exists()})
    assert not missing, f"README.md links to missing files: {missing}"


def block_text(benchmarks: str, name: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    assert start in benchmarks and end in benchmarks, f"BENCHMARKS.md has no block {name!r}"
    return benchmarks[benchmarks.index(start):benchmarks.index(end)]


def headline_rows(readme: str) -> list[list[str]]:
    """The cells of the rows of the README's headline-results table."""
    section = readme[readme.index("## Headline results"):]
    section = section[:section.find("\n## ", 1) if "\n## " in section[1:] else len(section)]
    rows = [[cell.strip() for cell in line.strip().strip("|").split(" | ")]
            for line in section.splitlines() if line.startswith("|")]
    return rows[2:]  # past the header and its rule


def test_the_readme_headline_numbers_are_in_the_blocks_they_cite():
    # Each row names its BENCHMARKS.md blocks in its last cell; every number it reports (all cells
    # but the first, which says what was measured) must be written in one of those blocks.
    benchmarks = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    rows = headline_rows((ROOT / "README.md").read_text(encoding="utf-8"))
    assert 4 <= len(rows) <= 6, f"the headline table has {len(rows)} rows"
    problems = []
    for row in rows:
        names = re.findall(r"`([^`]+)`", row[-1])
        assert names, f"the row {row[0]!r} names no block"
        cited = "".join(block_text(benchmarks, name) for name in names)
        for number in re.findall(r"\d+(?:\.\d+)?", " ".join(row[1:-1])):
            if not re.search(rf"(?<![\d.]){re.escape(number)}(?![\d]|\.\d)", cited):
                problems.append(f"{row[0]!r}: {number} is not in the blocks {names}")
    assert not problems, "\n".join(problems)


# --- the checker itself ------------------------------------------------------------------------

FAKE_PAGE = """# A page

```console
$ genforge train --model cgan --dataset mnist --minutes 2 --out runs/x
$ genforge train --model cgan --colour blue --out runs/x
$ genforge sample runs/x --n 10 --grid --out g.png   # a comment --not-a-flag
```

Run `genforge detect train --real mnist --fake runs/x --out det --epochs 3` and
`genforge data --data-dir d fetch mnist`, then `genforge data fetch mnist --data-dir d`,
`genforge sample/eval --prior none`, `genforge frobnicate runs/x`,
`genforge edit runs/x --input a.png --op sharpen --out y.png`, `genforge train --precision fp32|bf16`
and `make demo MODEL=vae`, `make install`, `make demo COLOUR=red`.
"""


def test_the_checker_finds_made_up_flags_commands_values_and_targets(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(FAKE_PAGE)
    problems = problems_in(page)
    text = "\n".join(problems)
    assert "genforge train has no flag --colour" in text
    assert "genforge detect has no flag --epochs" in text
    # --data-dir belongs to `genforge data`, not to its verb: after the verb argparse refuses it
    assert "genforge data fetch has no flag --data-dir" in text
    assert "no command 'frobnicate'" in text
    assert "--op 'sharpen': not one of" in text
    assert "no target 'install'" in text and "no variable COLOUR" in text
    assert "--not-a-flag" not in text  # comments are not commands
    assert len(problems) == 7, text  # and nothing else: the good lines pass
    lone = lone_flag_problems(page, "Use `--hybrid` or `--write-md` or `--turbo`.", known_flags())
    assert [problem.split(": ")[-1] for problem in lone] == ["no command has the flag --turbo"]


def test_the_checker_reads_guide_tables():
    table = "| flag | what |\n|---|---|\n| `--n N` | images |\n| `--grid`, `--nope` | one picture |\n"
    assert [flag for _, flag in guide_table_flags(table)] == ["--n", "--grid", "--nope"]
    assert "--nope" not in command_flags("sample") and "--grid" in command_flags("sample")
