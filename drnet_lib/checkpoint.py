"""Atomic checkpoint files: a crash mid-write never leaves a half-written checkpoint behind.

Writes go to a temporary file in the same folder, are flushed to disk, then renamed over the
target (``os.replace`` is atomic on POSIX and Windows), so a reader sees the old file or the new
one, never a mixture.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import torch


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, or written for another configuration."""


# the way on from a checkpoint that cannot be read: what it held (DrNet's or the pose LSTM's progress) is redone
START_OVER = "delete it to train this part of the run again from scratch"


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(file_object)`` on a temp file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda f: torch.save(state, f))


def _failed_zip_checksum(path: Path) -> str | None:
    """The first part of a torch.save file whose CRC-32 does not match, or None.

    torch.save writes a zip archive with a checksum per part, but torch.load does not check
    them: bytes overwritten inside a tensor load silently. zipfile checks every part (fast: a few
    ms per 100 MB). A file that is not a zip archive is left to torch.load's own error."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):  # not a zip, or truncated: torch.load says so
        return None


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint, refusing a missing, truncated or foreign file by name. Whether it belongs
    to a run's configuration is :meth:`drnet_lib.loop.ResumableLoop.read_checkpoint`'s question."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: check the path, or train the run first")
    damaged = _failed_zip_checksum(path)
    if damaged:
        raise CheckpointError(f"checkpoint {path} is damaged: its part {damaged!r} fails its CRC-32 checksum; {START_OVER}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # truncated or foreign file
        raise CheckpointError(f"checkpoint {path} cannot be read ({err.__class__.__name__}: {err}); {START_OVER}") from err
    if not isinstance(state, dict):  # a file torch can read that holds something else (a tensor, a model)
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a training checkpoint; {START_OVER}")
    return state
