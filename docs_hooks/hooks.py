"""MkDocs hooks (mkdocs.yml `hooks:`): fill in the generated parts of the pages and warn,
which `mkdocs build --strict` turns into a failed build, about anything undocumented."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference  # beside this file, which MkDocs loads by path

log = logging.getLogger("mkdocs.plugins.llmobs")


def _pages(files: Any) -> dict[str, str]:
    return {
        f.src_uri: Path(f.abs_src_path).read_text(encoding="utf-8")
        for f in files.documentation_pages()
    }


def _title(text: str, path: str) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path


def on_files(files: Any, config: Any) -> Any:
    for problem in reference.problems(_pages(files)):
        log.warning(problem)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if not reference.PLACEHOLDER.search(markdown):
        return markdown
    pages = _pages(files)
    titles = {path: _title(text, path) for path, text in pages.items()}
    # Pages sit side by side in docs/, so a page's path is also the link from another page.
    expanded, _ = reference.expand(markdown, reference.where_mentioned(pages, titles))
    return expanded
