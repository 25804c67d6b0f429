"""Names and places of KTH's files: the six actions, the video names, and where each file lives.

Real data and stand-in share one layout under a data root: the annotation
``<root>/kth/00sequences.txt``, the AVIs ``<root>/kth/raw/<action>/<video>_uncomp.avi`` and the
frame cache ``<root>/kth/processed<S>/<action>/<video>.npz``; a stand-in of a size has its own
data root, ``<root>/standin/<size>``. The loader (:mod:`.kth`, which re-exports all of this), the
annotation parser (:mod:`.kth_sequences`) and the stand-in (:mod:`.kth_standin`,
:mod:`.kth_figures`) take their names from here. Nothing heavy is imported, so the stand-in's
writer does not pull in torch.
"""

from __future__ import annotations

import re
from pathlib import Path

from .advice import prepare_command, standin_of

__all__ = ["ACTIONS", "KTH_SUBDIR", "PERSONS", "SCENARIOS", "VIDEO_RE", "VIDEO_SUFFIX", "avi_path",
           "cache_file", "kth_dir", "prepare_kth_command", "processed_dir", "raw_dir",
           "rewrite_fix", "sequences_path", "standin_root", "video_factors"]

# The action order used for labels 0..5 throughout (reference/datasets.md §3; the brief's order).
ACTIONS = ("walking", "jogging", "running", "boxing", "handwaving", "handclapping")
SCENARIOS = (1, 2, 3, 4)
PERSONS = tuple(range(1, 26))
VIDEO_SUFFIX = "_uncomp.avi"
VIDEO_RE = re.compile(r"person(\d{2})_(" + "|".join(ACTIONS) + r")_d([1-4])")
KTH_SUBDIR = "kth"


# --- layout -----------------------------------------------------------------------------------------

def kth_dir(root: str | Path) -> Path:
    """``<root>/kth``: everything KTH lives under it."""
    return Path(root) / KTH_SUBDIR


def raw_dir(root: str | Path) -> Path:
    """``<root>/kth/raw``: the AVIs, one folder per action (``raw/<action>/<video>_uncomp.avi``)."""
    return kth_dir(root) / "raw"


def sequences_path(root: str | Path) -> Path:
    return kth_dir(root) / "00sequences.txt"


def processed_dir(root: str | Path, image_size: int) -> Path:
    """``<root>/kth/processed<S>``: the frame cache at S px."""
    return kth_dir(root) / f"processed{image_size}"


def video_factors(video: str) -> tuple[int, int, int]:
    """``(action index 0..5, person 1..25, scenario 1..4)`` of a name like ``person01_boxing_d1``."""
    m = VIDEO_RE.fullmatch(video)
    if m is None:
        raise ValueError(f"not a KTH video name: {video!r} (expected personXX_<action>_dY)")
    return ACTIONS.index(m.group(2)), int(m.group(1)), int(m.group(3))


def avi_path(root: str | Path, video: str) -> Path:
    return raw_dir(root) / ACTIONS[video_factors(video)[0]] / (video + VIDEO_SUFFIX)


def cache_file(root: str | Path, video: str, image_size: int) -> Path:
    return processed_dir(root, image_size) / ACTIONS[video_factors(video)[0]] / (video + ".npz")


def standin_root(root: str | Path, size: str) -> Path:
    """Where the stand-in of ``size`` lives: its own root, so it never mixes with real data."""
    return Path(root) / "standin" / size


# --- what to tell the user to run ---------------------------------------------------------------------

def prepare_kth_command(path: str | Path, image_size: int | None = None, *options: str) -> str:
    """The ``drnet data prepare kth`` command line that prepares the data root holding ``path`` (a
    file or folder under ``<root>/kth``): with the stand-in's ``--size`` for a stand-in, ``--source
    real`` otherwise, and ``--image-size`` when the frames are not the default 64 px."""
    path = Path(path)
    standin = standin_of(path)
    if standin is not None:
        root, size = standin
        words = [f"--size {size}"]
    else:
        root = next((p.parent for p in (path, *path.parents) if p.name == KTH_SUBDIR), Path("data"))
        words = ["--source real"]
    if image_size not in (None, 64):
        words.append(f"--image-size {image_size}")
    return prepare_command("kth", root, *words, *options)


def rewrite_fix(path: str | Path, image_size: int | None = None) -> str:
    """How to get a bad or absent file of KTH back: a stand-in's is written again by ``prepare``
    (there is no zip or mirror for it); a real AVI is extracted again from its action's zip."""
    path = Path(path)
    delete = f"delete {path} and " if path.exists() else ""     # an absent file is just made again
    if standin_of(path) is not None:
        return f"{delete}run `{prepare_kth_command(path, image_size)}` to write it again"
    return (f"{delete}extract it again from its zip "
            f"(`{prepare_kth_command(path, image_size)}` does it)")
