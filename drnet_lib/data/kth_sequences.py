"""Reading KTH's annotation, ``00sequences.txt``: each video's ranges and the missing videos.

The file cuts every video into (usually 4) repetitions of its action, as 1-indexed inclusive
frame ranges; which frames of a range are used is the loader's choice (:func:`.kth.range_frames`).
The parser accepts the real file's quirks (header prose, blank lines, mixed tabs and spaces,
``*missing*`` videos, unsorted or overlapping ranges) and rejects anything else with an error
that names the file and the line. :mod:`.kth` re-exports :func:`read_sequences`,
:func:`parse_sequences` and :class:`SequenceFile`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .kth_layout import VIDEO_RE, prepare_kth_command, rewrite_fix
from .advice import standin_of
from .registry import DatasetFormatError

__all__ = ["SequenceFile", "parse_sequences", "read_sequences"]

_ENTRY_START = re.compile(r"person\d+_")
_RANGE_RE = re.compile(r"(\d+)\s*-\s*(\d+)")
_MISSING = "*missing*"


@dataclass(frozen=True)
class SequenceFile:
    """A parsed ``00sequences.txt``: ``ranges`` (video -> its ranges, in file order) and the
    videos marked ``*missing*``."""

    ranges: dict[str, list[tuple[int, int]]]
    missing: tuple[str, ...]


def read_sequences(path: str | Path) -> SequenceFile:
    """Parse ``00sequences.txt`` into its ranges and its ``*missing*`` videos.

    Lines that start with ``personNN_`` are entries, ``<video><white space>frames<white space>
    A-B, C-D, ...`` or ``<video><white space>*missing*``; any mix of tabs and spaces, trailing
    white space and CRLF line ends are accepted. Other lines before the first entry are the header
    (prose and the official split); blank lines are skipped anywhere. A malformed entry, a
    duplicate video, or non-blank text after the entries have begun raises
    :class:`.registry.DatasetFormatError` naming the file, the line number and the line.
    """
    path = Path(path)
    try:
        # utf-8-sig: a byte-order mark (as Windows editors write) would otherwise hide a first
        # entry from _ENTRY_START and drop that video silently
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
    except FileNotFoundError:
        raise FileNotFoundError(f"no KTH annotation file at {path}: prepare the data first "
                                f"(drnet_lib.data.kth.prepare)") from None
    ranges: dict[str, list[tuple[int, int]]] = {}
    first_line: dict[str, int] = {}
    missing: list[str] = []
    in_entries = False

    def bad(lineno, line, what):
        return DatasetFormatError(
            f"{path}, line {lineno}: {what}: {line.strip()!r}. Expected 'personXX_<action>_dY"
            f"<TAB>frames<TAB>A-B, C-D, ...' with 1-indexed inclusive ranges A <= B, or "
            f"'personXX_<action>_dY<TAB>*missing*'. Fix: {_fix(path)}")

    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if not _ENTRY_START.match(stripped):
            if in_entries:
                raise bad(lineno, line, "unexpected text among the entries")
            continue                                    # header prose or the split lines
        in_entries = True
        parts = stripped.split(None, 1)
        video, rest = parts[0], (parts[1].strip() if len(parts) > 1 else "")
        if VIDEO_RE.fullmatch(video) is None:
            raise bad(lineno, line, f"{video!r} is not a KTH video name")
        if video in first_line:
            raise bad(lineno, line, f"{video} already appeared on line {first_line[video]}")
        first_line[video] = lineno
        if rest == _MISSING:
            missing.append(video)
            continue
        head = rest.split(None, 1)
        if not head or head[0] != "frames" or len(head) < 2:
            raise bad(lineno, line, "no 'frames' and ranges after the video name")
        found = []
        for piece in head[1].split(","):
            m = _RANGE_RE.fullmatch(piece.strip())
            if m is None:
                raise bad(lineno, line, f"bad range {piece.strip()!r}")
            start, end = int(m.group(1)), int(m.group(2))
            if start < 1 or end < start:
                raise bad(lineno, line, f"bad range {start}-{end} (need 1 <= start <= end)")
            found.append((start, end))
        ranges[video] = found
    if not ranges:
        raise DatasetFormatError(f"{path}: no 'personXX_<action>_dY frames ...' entries found; is "
                                 f"this KTH's 00sequences.txt? Fix: {_fix(path)}")
    return SequenceFile(ranges, tuple(missing))


def _fix(path: Path) -> str:
    """How to get a good copy back: a stand-in's file is written again by prepare (it has no
    mirror); the real one is fetched again."""
    if standin_of(path) is not None:
        return rewrite_fix(path)
    return f"delete {path} and fetch it again (`{prepare_kth_command(path)}`)"


def parse_sequences(path) -> dict[str, list[tuple[int, int]]]:
    """Video name (without ``_uncomp.avi``) -> its ranges ``(start, end)``, 1-indexed and
    inclusive as written, in file order (unsorted and overlapping ranges kept as they are).
    ``*missing*`` videos are absent. See :func:`read_sequences` for the accepted format."""
    return read_sequences(path).ranges
