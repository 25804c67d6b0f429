"""Taking a source notebook's prose into an executed run of it, without running it again.

A chapter page is an executed notebook (``results/<profile>/<experiment>_seed<k>.ipynb``); a
rerun can take over an hour. When the executed copy ran exactly the code its source has now,
the source's markdown, comments and figure captions change no output, so they can be copied in
(:func:`refresh_prose`, ``drnet reproduce --prose-only``); when the code differs, only a rerun
brings the page up to date (:class:`CodeChanged`). :func:`cells_changed_since` says how far a
run is behind its source, for the pages that report it.
"""

from __future__ import annotations

import copy
import io
import itertools
import tokenize
from pathlib import Path

import nbformat

from .checkpoint import atomic_write


def cells_changed_since(executed, source) -> tuple[int, int]:
    """How far an executed run's notebook is behind its source notebook: ``(changed, total)``, the
    number of the source's cells whose text the executed copy does not contain, and the source's
    cell count. The book shows executed runs as the chapters; this says how stale one is."""
    ran = {cell.source for cell in nbformat.read(str(executed), as_version=4).cells}
    cells = nbformat.read(str(source), as_version=4).cells
    return sum(cell.source not in ran for cell in cells), len(cells)


class CodeChanged(ValueError):
    """The executed notebook ran other code than its source has now: only a rerun brings it up to date."""


# The code-cell metadata myst-nb reads for how an output is shown (figure caption, image alt text).
PRESENTATION_KEY = "mystnb"


def _is_injected(cell) -> bool:
    return "injected-parameters" in cell.metadata.get("tags", [])


def code_without_comments(source: str) -> tuple | str:
    """What a code cell runs, without its comments: its Python tokens, comments and blank
    lines dropped. Two cells with equal results run the same code, so a comment fixed in the
    source (a parameter's help text, say) is prose to :func:`refresh_prose`. Text that does not
    tokenize as Python is returned unchanged, so only an exact match counts."""
    skip = {tokenize.COMMENT, tokenize.NL}
    try:
        # a statement's end reads "\n", or "" on the cell's last line: the same end either way
        return tuple((t.type, "" if t.type == tokenize.NEWLINE else t.string)
                     for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in skip)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return source


def refresh_prose(executed, source) -> int:
    """Bring an executed run's prose up to date with its source notebook, without rerunning it.

    A chapter page is an executed notebook; fixing a sentence in the source would otherwise leave
    the page stale until a rerun (over an hour for some chapters). Markdown has no outputs, so
    when the executed copy ran exactly the source's code (same code cells, same order; papermill's
    injected-parameters cell aside), the source's markdown can replace the executed copy's without
    changing any result. Markdown between two code cells is taken from the source as a block, so
    prose cells may also have been added or removed. A code cell whose comments alone changed
    takes the source's text (:func:`code_without_comments`). A code cell's presentation settings (its
    ``mystnb`` metadata: a figure's caption, an image's alt text) are prose too and are taken from
    the source; its outputs are kept. The file is rewritten atomically, and its metadata records how
    many cells came from a later source (``drnet.prose_refreshed``).

    Returns:
        the number of prose cells replaced, added or removed, and of code cells whose comments
        or captions changed (0: already up to date; the file is then not rewritten).
    Raises:
        CodeChanged: a code cell differs, or one was added or removed; names the first one.
    """
    executed, source = Path(executed), Path(source)
    ran = nbformat.read(str(executed), as_version=4)
    src = nbformat.read(str(source), as_version=4)
    ran_code = [c for c in ran.cells if c.cell_type == "code" and not _is_injected(c)]
    src_code = [c for c in src.cells if c.cell_type == "code"]
    for k, (a, b) in enumerate(itertools.zip_longest(ran_code, src_code)):
        if a is None or b is None or code_without_comments(a.source) != code_without_comments(b.source):
            first_line = ((b or a).source.splitlines() or [""])[0]
            raise CodeChanged(f"{executed} ran other code than {source} has now (code cell {k + 1}: "
                              f"{first_line!r}): its prose cannot be refreshed alone; only a rerun updates it")

    def prose_gaps(cells):
        """The non-code cells before each code cell, and after the last: len(code cells) + 1 lists."""
        gaps = [[]]
        for cell in cells:
            if cell.cell_type == "code":
                gaps.append([])
            else:
                gaps[-1].append(cell)
        return gaps

    ran_gaps = prose_gaps([c for c in ran.cells if not _is_injected(c)])
    src_gaps = prose_gaps(src.cells)
    changed, cells, code = 0, [], iter(ran_code)
    for k, (old, new) in enumerate(zip(ran_gaps, src_gaps)):
        if [c.source for c in old] == [c.source for c in new]:
            cells.extend(old)   # unchanged: keep the executed cells as they are
        else:
            changed += max(len(old), len(new)) - sum(a.source == b.source for a, b in zip(old, new))
            cells.extend(copy.deepcopy(new))
        if k < len(src_code):
            cell, now = next(code), src_code[k]
            shown = now.metadata.get(PRESENTATION_KEY)
            # its comments (the code is the same, checked above) and its caption or alt text: no
            # output depends on either
            if cell.source != now.source or cell.metadata.get(PRESENTATION_KEY) != shown:
                cell.source = now.source
                if shown is None:
                    cell.metadata.pop(PRESENTATION_KEY, None)
                else:
                    cell.metadata[PRESENTATION_KEY] = copy.deepcopy(shown)
                changed += 1
            cells.append(cell)
            if "parameters" in cell.metadata.get("tags", []):
                cells.extend(c for c in ran.cells if _is_injected(c))   # papermill's cell stays after it
    if not changed:
        return 0
    ran.cells = cells
    record = ran.metadata.setdefault("drnet", {}).setdefault("prose_refreshed", {"cells": 0})
    record["cells"] += changed
    atomic_write(executed, lambda f: f.write(nbformat.writes(ran).encode() + b"\n"))
    return changed


def prose_refreshed(executed) -> int:
    """How many prose cells :func:`refresh_prose` took into an executed notebook after its run (0: none)."""
    meta = nbformat.read(str(executed), as_version=4).metadata
    return meta.get("drnet", {}).get("prose_refreshed", {}).get("cells", 0)
