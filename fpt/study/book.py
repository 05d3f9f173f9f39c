"""`fpt book`: the results book (docs/results/NAME/, one page per study) rebuilt from its committed files, and the
README's result tables regenerated from the same files.

A page is what `fpt report sweeps/NAME out=docs/results/NAME` writes: report.md, plots/ and the evidence files
(fpt.study.bundle). A markdown file shows a page's main table (or its differences to FPT with 95% intervals: `book-intervals`) between
two markers, which `fpt book` rewrites:

    <!-- book-table: NAME -->
    ...the table of docs/results/NAME/results.csv...
    <!-- /book-table -->

`scripts/results_book.sh` re-runs every CPU study, then calls this.
"""

from __future__ import annotations

import re
from pathlib import Path

from fpt.errors import FPTError

FILES = ("README.md", "docs/results/index.md")  # the files whose marked tables it rewrites (from the repository root)
MARKED = re.compile(r"(<!-- book-(table|intervals): ([\w.-]+) -->\n)(.*?)(<!-- /book-\2 -->)", re.S)


def main(args: list[str]) -> int:
    """fpt book [dir=docs/results] [check=true]: run in the repository's root (README.md, docs/results/index.md)."""
    from fpt.config import command_line

    c = command_line("book", args, nowhere="it rewrites the book's pages and the marked tables of " + ", ".join(FILES))
    values = c.values()
    book = Path(str(values.pop("dir", "docs/results")))
    check = str(values.pop("check", False)).lower() in ("true", "1", "yes")
    if values:
        raise FPTError(f"unknown option '{next(iter(values))}'; fpt book takes dir=BOOK and check=true")
    if not check:
        from fpt.study.report import report

        for page in pages(book):
            print(f"rebuilt {report(page)}")
    texts = {f: f.read_text() for f in map(Path, FILES) if f.is_file()}
    filled = {f: fill(text, book) for f, text in texts.items()}  # each file's tables made once
    stale = [f for f in texts if filled[f] != texts[f]]
    if check:
        for f in stale:
            print(f"{f}: its book tables differ from {book}'s results.csv: run fpt book")
        return 1 if stale else 0
    for f in texts:
        f.write_text(filled[f])
        print(f"tables of {f}: {'rewritten' if f in stale else 'as they were'}")
    return 0


def pages(book: Path) -> list[Path]:
    """The book's pages: folders under `book` with a results.csv."""
    if not book.is_dir():
        raise FPTError(f"no results book at {book}: give dir=BOOK (a folder of study pages, e.g. docs/results)")
    return sorted(p.parent for p in book.glob("*/results.csv"))


def table(page: Path, kind: str = "table") -> str:
    """A page's main table (variants by tasks, mean ± std (n), † budget-bound) or its table of differences to FPT
    with 95% intervals (kind "intervals"), as markdown, from the page's files alone."""
    from fpt.study.report import read

    return _markdown(read(page), kind)


def _markdown(sw, kind: str) -> str:
    from fpt.study.report import interval_table, main_table

    return "\n".join(main_table(sw) if kind == "table" else interval_table(sw)) + "\n"


def fill(text: str, book: Path) -> str:
    """`text` with every marked table replaced by its page's table; a marker naming no page is refused. Each page is
    read once, however many of its tables the text shows."""
    from fpt.study.report import read

    read_pages: dict[str, object] = {}

    def one(m: re.Match) -> str:
        kind, name = m.group(2), m.group(3)
        page = book / name
        if not (page / "results.csv").is_file():
            raise FPTError(f"book-{kind} '{name}': no {page / 'results.csv'}; run the study and "
                           f"fpt report sweeps/{name} out={page}, or fix the marker")
        if name not in read_pages:
            read_pages[name] = read(page)
        return m.group(1) + _markdown(read_pages[name], kind) + m.group(5)

    return MARKED.sub(one, text)
