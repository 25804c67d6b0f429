"""What to tell the user to run when a data file is bad: the ``drnet data prepare`` command line,
and for a file of an embedded stand-in, that it is written again rather than fetched.

Every dataset's ``prepare`` writes its stand-in of a size under ``<root>/standin/<size>/``; a
file there has no mirror or zip to come back from, so its error advice differs from real data's.
"""

from __future__ import annotations

import shlex
from pathlib import Path

__all__ = ["STANDIN_SIZES", "prepare_command", "standin_fix", "standin_of"]

STANDIN_SIZES = ("ci", "cpu")   # the sizes every dataset's stand-in comes in (``--size``)


def standin_of(path: str | Path) -> tuple[Path, str] | None:
    """``(data root, size)`` when ``path`` lies in an embedded stand-in, else None."""
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.name in STANDIN_SIZES and folder.parent.name == "standin":
            return folder.parent.parent, folder.name
    return None


def standin_fix(path: str | Path, dataset: str) -> str | None:
    """For a file of an embedded stand-in, how to write it again: "delete <path> and run `drnet
    data prepare <dataset> --size <size> --root <root>` to write it again"; None for any other
    file (real data, whose own advice applies)."""
    where = standin_of(path)
    if where is None:
        return None
    root, size = where
    command = prepare_command(dataset, root, f"--size {size}")
    return f"delete {path} and run `{command}` to write it again"


def prepare_command(dataset: str, root: str | Path, *options: str) -> str:
    """The ``drnet data prepare`` command line for ``dataset`` under the data root ``root``.
    ``--root`` is always given: the command's default (the clone's ``data/``) need not be the
    root in use, and a relative root is relative to where it was used. The root is quoted for the
    shell where it needs it (a space, as in Colab's "My Drive"), so the line can be pasted."""
    return " ".join(["drnet data prepare", dataset, *options, f"--root {shlex.quote(str(root))}"])
