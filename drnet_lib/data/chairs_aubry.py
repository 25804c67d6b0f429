"""Aubry et al.'s "Seeing 3D chairs" renders converted into the authors' chairs tree.

The ``"real"`` chairs source (:func:`.chairs.prepare_chairs`): ``rendered_chairs.tar`` holds
``rendered_chairs/<model>/renders/image_XXX_pYYY_tZZZ_r096.png`` (two elevations x 31 azimuths per
chair, white background); :func:`convert_aubry` crops, resizes and writes each chair into the
layout DrNet-py reads, so one loader (:func:`.chairs.load_chairs_tree`) serves every source.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..checkpoint import atomic_write
from .chairs import ELEVATION_PREFIX, chairs_dir, frame_name
from .registry import DatasetFormatError

__all__ = ["convert_aubry"]

AUBRY_NAME_RE = re.compile(
    r"(?:.*/)?rendered_chairs/(?P<model>[^/]+)/renders/"
    r"image_(?P<index>\d+)_p(?P<elev>\d+)_t(?P<azim>\d+)_r(?P<dist>\d+)\.png")
AUBRY_SIDECAR = "_aubry_conversion.json"
AUBRY_FORMAT_VERSION = 1
CROP_MARGIN = 0.04        # each side of the bounding square, as a fraction of its side
WHITE_THRESHOLD = 250     # a pixel with any channel below this is part of the chair


def _aubry_sources(tar_or_dir: Path):
    """``(model -> {(elev, azim): opener}, order of models, closer)`` from a tar or a folder."""
    models: dict[str, dict[tuple[int, int], object]] = {}
    if tar_or_dir.is_dir():
        base = tar_or_dir
        if (base / "rendered_chairs").is_dir():
            base = base / "rendered_chairs"
        for png in sorted(base.glob("*/renders/image_*.png")):
            m = AUBRY_NAME_RE.fullmatch("rendered_chairs/" + png.relative_to(base).as_posix())
            if m:
                models.setdefault(m["model"], {})[int(m["elev"]), int(m["azim"])] = png.read_bytes
        return models, sorted(models), lambda: None
    try:
        tar = tarfile.open(tar_or_dir, "r:*")  # noqa: SIM115 - closed by the returned closer
    except (tarfile.TarError, OSError) as err:
        raise DatasetFormatError(f"{tar_or_dir}: not a readable tar archive ({err}); delete it and "
                                 f"fetch it again") from None
    order = []
    try:
        for member in tar:                 # in archive order, so a compressed tar streams forward
            m = AUBRY_NAME_RE.fullmatch(member.name) if member.isfile() else None
            if m:
                if m["model"] not in models:
                    order.append(m["model"])
                models.setdefault(m["model"], {})[int(m["elev"]), int(m["azim"])] = (
                    lambda member=member: tar.extractfile(member).read())
        _check_end_of_archive(tar, tar_or_dir)
    except (tarfile.TarError, OSError, EOFError) as err:   # a cut-short or damaged archive
        tar.close()
        raise DatasetFormatError(f"{tar_or_dir}: damaged or cut-short tar archive ({err}); delete "
                                 f"it and fetch it again") from None
    except DatasetFormatError:
        tar.close()
        raise
    return models, order, tar.close


def check_archive(tar: str | Path) -> int:
    """Read the member list of a ``rendered_chairs.tar`` (not the images) and return how many
    chair models it holds; an archive that is unreadable, cut short or holds no Aubry renders
    raises :class:`DatasetFormatError` naming it. The registry runs this on a first copy before
    recording its hash (no hash of the tar is published)."""
    models, _, close = _aubry_sources(Path(tar))   # reads every member header, and the archive's end
    close()
    if not models:
        raise DatasetFormatError(
            f"{tar}: no rendered_chairs/<model>/renders/image_XXX_pYYY_tZZZ_rRRR.png files "
            f"found; is this Aubry et al.'s rendered_chairs.tar? Delete it and fetch it again")
    return len(models)


def _check_end_of_archive(tar: tarfile.TarFile, path: Path) -> None:
    """After iterating all of ``tar``'s members: a tar cut short inside a member header, or
    followed by garbage, reads as if it ended there (tarfile stops quietly); a whole archive has
    a block of zeros where its members end."""
    tar.fileobj.seek(tar.offset)
    end = tar.fileobj.read(tarfile.BLOCKSIZE)
    if end != bytes(tarfile.BLOCKSIZE):
        raise DatasetFormatError(f"{path}: cut-short or damaged tar archive (no end-of-archive "
                                 f"block after its last whole member); delete it and fetch it "
                                 f"again")


def _grid(views) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """A model's view grid: ((elevation, (azimuths, sorted)), ...), elevations sorted."""
    by_elev: dict[int, list[int]] = {}
    for e, a in views:
        by_elev.setdefault(e, []).append(a)
    return tuple((e, tuple(sorted(by_elev[e]))) for e in sorted(by_elev))


def _crop_square(images, model: str, margin=CROP_MARGIN):
    """One square box (left, top, side) holding the chair in every view of one model."""
    mask = np.zeros(images[0].shape[:2], bool)
    for img in images:
        if img.shape[:2] != mask.shape:
            raise DatasetFormatError(f"{model}: its views differ in size ({img.shape[:2]} and "
                                     f"{mask.shape}); the archive is damaged or not Aubry et al.'s")
        mask |= (img < WHITE_THRESHOLD).any(-1)
    if not mask.any():                         # nothing but white: keep the whole frame
        h, w = mask.shape
        side = max(h, w)
        return (w - side) // 2, (h - side) // 2, side
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    side = int(np.ceil(max(bottom - top, right - left) * (1 + 2 * margin)))
    cy, cx = (top + bottom) / 2, (left + right) / 2
    return round(cx - side / 2), round(cy - side / 2), side


def _to_white_rgb(im):
    """A PIL image as RGB, transparent parts composited onto white."""
    from PIL import Image

    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, im).convert("RGB")
    return im.convert("RGB")


def _convert_model(model, views, grid, out_folder: Path, size: int):
    """Decode, crop, resize and write one model's views (via a hidden temporary folder)."""
    from PIL import Image

    keys = [(e, a) for e, azims in grid for a in azims]
    pics = []
    for key in keys:
        try:
            with Image.open(io.BytesIO(views[key]())) as im:
                pics.append(np.asarray(_to_white_rgb(im)))
        except (OSError, SyntaxError, ValueError) as err:
            raise DatasetFormatError(f"{model}: view p{key[0]:03d}_t{key[1]:03d} is not a readable "
                                     f"PNG ({err}); the archive is damaged: delete it and fetch it "
                                     f"again") from None
    left, top, side = _crop_square(pics, model)
    tmp = out_folder / f".{model}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    k = 0
    for e, azims in grid:
        sub = tmp / f"{ELEVATION_PREFIX}{e:03d}"
        sub.mkdir(parents=True)
        for i in range(len(azims)):            # azimuths in increasing tZZZ order: frames 1..31
            canvas = Image.new("RGB", (side, side), (255, 255, 255))
            canvas.paste(Image.fromarray(pics[k]), (-left, -top))
            canvas.resize((size, size), Image.Resampling.LANCZOS).save(sub / frame_name(i + 1),
                                                                       format="PNG")
            k += 1
    final = out_folder / model
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def convert_aubry(tar_or_dir: str | Path, out_root: str | Path, size: int = 64,
                  progress: bool = True) -> Path:
    """Convert Aubry et al.'s ``rendered_chairs`` (the tar, or a folder it was extracted to) into
    the authors' tree under ``out_root``, and return ``out_root`` (for :func:`load_chairs_tree`).

    The source files are ``rendered_chairs/<model>/renders/image_XXX_pYYY_tZZZ_r096.png``: ``YYY``
    the camera elevation (020 or 030 degrees), ``ZZZ`` the azimuth in degrees (31 per elevation,
    a full turn), on a white background. Each model becomes ``<model>/elevation_<YYY>/`` holding
    ``p200-64_<i>.png``, ``i = 1..31`` in increasing azimuth, cropped to one square round the chair
    (the union of its views' non-white pixels plus a 4% margin, so scale and position stay fixed
    while the chair turns), resized to ``size`` (Lanczos) and stored as RGB.

    Resumable: each model is written to a hidden folder and renamed into place, and a model whose
    folder exists is skipped. Models whose views do not form the common grid (the same
    elevations and azimuths as most models) are skipped with a warning and listed in the
    ``_aubry_conversion.json`` sidecar, which also records the azimuths and the size.
    """
    src, out_root = Path(tar_or_dir), Path(out_root)
    folder = chairs_dir(out_root)
    side_path = folder / AUBRY_SIDECAR
    if side_path.exists():
        old = json.loads(side_path.read_text())
        if old.get("image_size") != size:
            raise ValueError(f"{folder} was converted at {old.get('image_size')} px, not {size}; "
                             f"convert into another out_root or delete {folder}")
    models, order, close = _aubry_sources(src)
    try:
        if not models:
            raise DatasetFormatError(
                f"{src}: no rendered_chairs/<model>/renders/image_XXX_pYYY_tZZZ_rRRR.png files "
                f"found; is this Aubry et al.'s rendered_chairs.tar?")
        grids = {m: _grid(v) for m, v in models.items()}
        common = Counter(grids.values()).most_common(1)[0][0]
        odd = sorted(m for m, g in grids.items() if g != common)
        if odd:
            warnings.warn(f"{len(odd)} Aubry models do not have the common grid of views "
                          f"and are skipped: {odd[:5]}", stacklevel=2)
        folder.mkdir(parents=True, exist_ok=True)
        info = {"format_version": AUBRY_FORMAT_VERSION, "source": src.name, "image_size": size,
                "elevation_folders": [f"{ELEVATION_PREFIX}{e:03d}" for e, _ in common],
                "azimuths_deg": {f"{e:03d}": list(a) for e, a in common},
                "frame_names": "p200-64_<i>.png, i = 1 + rank of the azimuth tZZZ",
                "crop": {"margin": CROP_MARGIN, "white_threshold": WHITE_THRESHOLD,
                         "resample": "lanczos"},
                "skipped_models": odd}
        atomic_write(side_path, lambda f: f.write(json.dumps(info, indent=1).encode()))
        todo = [m for m in order if m not in odd and not (folder / m).is_dir()]
        for m in tqdm(todo, desc="converting Aubry chairs", unit="chair", disable=not progress,
                      initial=len(order) - len(odd) - len(todo), total=len(order) - len(odd)):
            _convert_model(m, models[m], common, folder, size)
    finally:
        close()
    return out_root
