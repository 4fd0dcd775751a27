"""docs/troubleshooting.md lists every error message a user can meet: each message's fixed text
(what is left when the f-string's variable parts are cut out) must appear on that page, so a new
`raise ConfigError(...)` without its explanation fails here."""

import ast
import inspect
import re
from pathlib import Path

import genforge.errors

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "genforge"
PAGE = ROOT / "docs" / "troubleshooting.md"
# The exceptions raised for people: genforge's own, and argparse's for a bad flag value.
ERRORS = {name for name, cls in inspect.getmembers(genforge.errors, inspect.isclass)
          if issubclass(cls, genforge.errors.GenforgeError)} | {"ArgumentTypeError"}
HOLE = "\0"  # stands for a variable part of a message


def _text(node: ast.AST) -> str:
    """A message with each variable part replaced by HOLE."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else HOLE for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return HOLE


def messages(source: str) -> list[tuple[int, str]]:
    """(line, message) of every error class in ERRORS called with a message in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in ERRORS:
                found.append((node.lineno, _text(node.args[0])))
    return found


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("`", ""))


def missing_fragments(message: str, page: str) -> list[str]:
    """The fixed parts of `message` (6 characters or more) that the page does not contain."""
    parts = [p.strip(" '\"") for p in message.split(HOLE)]
    return [p for p in parts if len(p) >= 6 and _norm(p) not in page]


def test_every_error_message_is_on_the_troubleshooting_page():
    page = _norm(PAGE.read_text())
    absent = []
    for path in sorted(SRC.rglob("*.py")):
        for line, message in messages(path.read_text()):
            gaps = missing_fragments(message, page)
            if gaps:
                absent.append(f"{path.relative_to(SRC)}:{line}: {gaps}")
    assert not absent, "docs/troubleshooting.md lacks these messages:\n" + "\n".join(absent)


def test_the_check_finds_a_message_that_is_not_documented():
    source = 'raise RunError(f"{path} holds no flux capacitor; charge it first")\n'
    [(_, message)] = messages(source)
    assert missing_fragments(message, "nothing here") == ["holds no flux capacitor; charge it first"]
    page = "`<path>` holds no flux capacitor; charge it first"
    assert missing_fragments(message, _norm(page)) == []
