"""MkDocs hook: the benchmarks page is the repository's BENCHMARKS.md, read at build time.

BENCHMARKS.md lives at the repository root (the benchmark scripts rewrite its blocks), so the
site includes it rather than keeping a copy that would drift. Its picture links point at
docs/images/ from the root; on the site they are images/ beside the page. Other relative links
(to scripts or files outside docs/) are not pages of the site: they become plain code text.
"""

from __future__ import annotations

import re
from pathlib import Path

MARKER = "<!-- include: BENCHMARKS.md -->"
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\((?!https?://|#|mailto:)([^)\s]+)\)")


def _benchmarks(root: Path) -> str:
    text = (root / "BENCHMARKS.md").read_text(encoding="utf-8")
    text = text.replace("](docs/images/", "](images/")
    return LINK.sub(lambda m: m[1] if m[1].strip("`") == m[2] else f"{m[1]} (`{m[2]}`)", text)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    root = Path(config["config_file_path"]).parent
    return markdown.replace(MARKER, _benchmarks(root))
