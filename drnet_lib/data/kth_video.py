"""KTH's video files: decoding an AVI to grey frames, squashing them, the frame cache, the zips.

The per-video work of the pipeline in :mod:`.kth`. :func:`decode_video` decodes an AVI with PyAV
(FFmpeg) to its luma and :func:`squash` resizes the frames by exact area averaging (the authors'
``ffmpeg -s SxS``: no crop, the aspect ratio changes). :func:`_convert_one`, the worker that
:func:`.kth.convert` runs for each video, writes one cache file ``<video>.npz`` (uint8 ``frames``,
the ``key`` of the AVI it was made from, ``num_frames``, ``source_size``); :func:`_source_key` and
:func:`_cache_is_current` decide whether a cache file can be kept. :func:`extract_zip` unpacks one
of the real action zips. A video that cannot be decoded raises :class:`CorruptVideoError`.
:mod:`.kth` re-exports the public names (and calls :func:`_convert_one` through its own name, so
replacing ``kth._convert_one`` replaces the worker).
"""

from __future__ import annotations

import os
import shutil
import zipfile
import zlib
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..checkpoint import atomic_write
from .kth_layout import prepare_kth_command, rewrite_fix
from .registry import DatasetFormatError

__all__ = ["CACHE_VERSION", "CHECKSUMS", "CorruptVideoError", "check_checksum", "corrupt_fix", "crc32_of",
           "decode_video", "extract_zip", "file_stamp", "read_cached", "read_checksums", "squash", "write_checksums"]

CACHE_VERSION = 2        # 2: exact area squash


class CorruptVideoError(DatasetFormatError):
    """An AVI cannot be decoded, or decodes to fewer frames than its header announces."""


# --- decoding and the frame cache -----------------------------------------------------------------

def _area_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """For each output cell ``[i, i + 1) * n_in / n_out`` of a resampled axis, the input pixels it
    overlaps and the fraction of the cell each covers: ``(index, weight)``, ``(n_out, K)`` each."""
    scale = n_in / n_out
    k = int(np.ceil(scale)) + 1
    idx = np.zeros((n_out, k), np.int64)
    w = np.zeros((n_out, k), np.float64)
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        first = int(np.floor(lo))
        for j in range(k):
            p = first + j
            if p >= n_in:
                break
            cover = min(hi, p + 1) - max(lo, p)
            if cover > 0:
                idx[i, j], w[i, j] = p, cover / scale
    return idx, w


def squash(frames: np.ndarray, size: int, chunk: int = 256) -> np.ndarray:
    """``(F, H, W)`` uint8 -> ``(F, size, size)`` uint8: each output pixel is the exact mean of
    the ``H/size x W/size`` area of the frame it covers (fractional pixels weighted by their
    overlap), rounded. The whole frame is kept, so a 160x120 frame is squashed, as the authors'
    ``ffmpeg -s SxS`` does."""
    F, H, W = frames.shape
    iy, wy = _area_weights(H, size)
    ix, wx = _area_weights(W, size)
    out = np.empty((F, size, size), np.uint8)
    for start in range(0, F, chunk):
        x = frames[start:start + chunk].astype(np.float64)
        cols = sum(x[:, :, ix[:, j]] * wx[:, j] for j in range(ix.shape[1]))        # (f, H, S)
        both = sum(cols[:, iy[:, j], :] * wy[:, j, None] for j in range(iy.shape[1]))  # (f, S, S)
        out[start:start + chunk] = np.clip(np.floor(both + 0.5), 0, 255).astype(np.uint8)
    return out


def decode_video(path: str | Path, image_size: int | None = None) -> tuple[np.ndarray, dict]:
    """Decode an AVI to grey frames ``(F, H, W)`` uint8, squashed to ``image_size`` square if given.

    Grey is the decoded luma plane (the KTH content is grey). Resizing is :func:`squash` (exact
    area averaging of the whole frame, no crop). Returns the frames and ``{"width", "height",
    "header_frames"}`` of the source. A file that is not an AVI, cannot be decoded, holds no frame
    or yields fewer frames than its header announces raises :class:`CorruptVideoError` naming it.
    """
    import av
    from av.video.reformatter import VideoReformatter

    path = Path(path)
    to_grey = VideoReformatter()
    fix = f"Fix: {corrupt_fix(path, image_size)}"
    frames, width, height, header = [], None, None, 0
    try:
        with av.open(str(path)) as container:
            # FFmpeg opens images and other containers too: a PNG saved under the AVI's name
            # would decode as a one-frame "video" and lose every annotated range silently
            if "avi" not in container.format.name.split(","):
                raise CorruptVideoError(f"{path}: not an AVI file (FFmpeg reads it as "
                                        f"{container.format.name!r}). {fix}")
            if not container.streams.video:
                raise CorruptVideoError(f"{path}: no video stream. {fix}")
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1   # tiny frames: threads cost more than they save
            header = int(stream.frames or 0)
            for frame in container.decode(stream):
                # one reformatter per video keeps FFmpeg's scaler context: much faster than
                # frame.to_ndarray(format="gray"), which builds a new one for every frame
                grey = to_grey.reformat(frame, format="gray").to_ndarray()
                if width is None:
                    height, width = grey.shape
                elif grey.shape != (height, width):
                    raise CorruptVideoError(f"{path}: frame {len(frames)} is {grey.shape[1]}x"
                                            f"{grey.shape[0]}, the first was {width}x{height}. {fix}")
                frames.append(grey)
    except CorruptVideoError:
        raise
    except Exception as err:  # noqa: BLE001 - FFmpeg's errors are many; all mean a bad file
        raise CorruptVideoError(f"{path}: cannot be decoded ({type(err).__name__}: {err}). "
                                f"{fix}") from None
    if not frames:
        raise CorruptVideoError(f"{path}: no frame could be decoded. {fix}")
    if header and len(frames) < header:
        raise CorruptVideoError(f"{path}: truncated or damaged: its header announces {header} frames "
                                f"but only {len(frames)} could be decoded. {fix}")
    frames = np.stack(frames)
    if image_size is not None and frames.shape[1:] != (image_size, image_size):
        frames = squash(frames, image_size)
    return frames, {"width": width, "height": height, "header_frames": header}


def corrupt_fix(avi: str | Path, image_size: int | None = None) -> str:
    """The two ways on from a bad or absent AVI: get it back, or leave it out with the command
    line's ``--skip-corrupt`` (the conversion then records it, and later loads accept that)."""
    skip = prepare_kth_command(avi, image_size, "--skip-corrupt")
    return f"{rewrite_fix(avi, image_size)}, or leave it out with `{skip}` (skip_corrupt=True in Python)"


def file_stamp(path: Path) -> str:
    """What tells a file's version apart without reading it: ``"bytes=<size> mtime_ns=<time>"``."""
    st = path.stat()
    return f"bytes={st.st_size} mtime_ns={st.st_mtime_ns}"


def _source_key(avi: Path, image_size: int) -> str:
    return f"v{CACHE_VERSION} S={image_size} {file_stamp(avi)}"


def _cache_is_current(path: Path, key: str) -> bool:
    try:
        with np.load(path, allow_pickle=False) as z:
            return str(z["key"]) == key
    except FileNotFoundError:
        return False
    except Exception:  # noqa: BLE001 - a damaged cache file is converted again, never trusted
        return False


# Beside the AVIs of each action folder: the CRC32 of every AVI as it was written there (from the
# zip's own record when extracted, from the written bytes for the stand-in). Damage inside an
# MJPEG or MPEG-4 frame can decode without an error, to wrong pixels; the checksum shows it.
CHECKSUMS = ".crc32.json"


def write_checksums(folder: Path, crc32s: dict[str, int]) -> None:
    """Record ``{AVI file name: CRC32}`` for all of ``folder``'s AVIs (the stand-in and a zip
    each write a whole action folder at once)."""
    import json

    atomic_write(Path(folder) / CHECKSUMS, lambda f: f.write(json.dumps(dict(sorted(crc32s.items())), indent=0).encode()))


def read_checksums(folder: Path) -> dict[str, int]:
    """The recorded CRC32s of ``folder``'s AVIs; empty when none were recorded (AVIs placed by
    hand: they are decoded unchecked) or the record is unreadable."""
    import json

    try:
        known = json.loads((Path(folder) / CHECKSUMS).read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def crc32_of(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return crc


def check_checksum(avi: Path, expected: int | None, image_size: int | None = None) -> None:
    """Raise :class:`CorruptVideoError` when ``avi``'s bytes are not those recorded for it
    (``expected``, from :func:`read_checksums`; None: nothing recorded, nothing to check)."""
    if expected is None:
        return
    avi = Path(avi)
    actual = crc32_of(avi)
    if actual != expected:
        raise CorruptVideoError(f"{avi}: damaged since it was written: its CRC32 is {actual:08x}, "
                                f"{avi.parent / CHECKSUMS} records {expected:08x}. "
                                f"Fix: {corrupt_fix(avi, image_size)}")


def _convert_one(task) -> tuple[str, str | None, dict | None]:
    """Check one AVI against its recorded CRC32, decode it and write its cache file. Returns
    ``(video, error or None, info)``."""
    video, avi, out, key, image_size, expected_crc32 = task
    try:
        check_checksum(avi, expected_crc32, image_size)
        frames, info = decode_video(avi, image_size)
    except CorruptVideoError as err:
        return video, str(err), None
    info = dict(info, frames=len(frames))

    def write(f):
        np.savez_compressed(f, frames=frames, key=np.array(key),
                            num_frames=np.array(len(frames), np.int64),
                            source_size=np.array([info["width"], info["height"]], np.int64))
    atomic_write(out, write)
    return video, None, info


def read_cached(path: Path, entry: str, image_size: int):
    """One entry of a converted video's cache file: ``"frames"`` ``(T, S, S)`` uint8 or
    ``"num_frames"``. A missing file raises FileNotFoundError; a damaged one (the conversion
    checks only its key) :class:`.registry.DatasetFormatError` naming it and the fix."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return z[entry]
    except FileNotFoundError:
        raise
    except (zlib.error, zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
        raise DatasetFormatError(
            f"{path}: the converted frames cannot be read ({type(err).__name__}: {err}). Fix: delete "
            f"this file and convert again (`{prepare_kth_command(path, image_size)}` redoes only the "
            f"missing videos)") from err


# --- real data: zips ------------------------------------------------------------------------------

def extract_zip(zip_path: str | Path, dest: str | Path, progress: bool = True) -> Path:
    """Extract the AVIs of one KTH zip (they unpack flat) into ``dest``, once.

    The files go to a hidden folder first, renamed to ``dest`` when complete; a marker records the
    zip's size and modification time, so a later call with the same zip does nothing but put back
    AVIs deleted since (what a corrupt video's error advises). A damaged zip raises
    :class:`.registry.DatasetFormatError` naming it.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    stamp = f"{zip_path.name} {file_stamp(zip_path)}\n"
    marker = dest / ".extracted"
    if marker.is_file() and marker.read_text() == stamp:
        _restore_deleted(zip_path, dest)
        return dest
    tmp = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with zipfile.ZipFile(zip_path) as z:
            members = [m for m in z.infolist() if not m.is_dir() and m.filename.endswith(".avi")]
            if not members:
                raise DatasetFormatError(f"{zip_path}: holds no .avi file; is it a KTH action "
                                         f"zip? Fix: delete it and fetch it again")
            for m in tqdm(members, desc=f"extracting {zip_path.name}", unit="avi",
                          disable=not progress):
                with z.open(m) as src, open(tmp / Path(m.filename).name, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)   # zipfile checks the CRC as it reads
            write_checksums(tmp, {Path(m.filename).name: m.CRC for m in members})
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _damaged_zip(zip_path, err) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / ".extracted").write_text(stamp)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def _damaged_zip(zip_path: Path, err) -> DatasetFormatError:
    return DatasetFormatError(f"{zip_path}: damaged zip ({err}). Fix: delete it and fetch it again")


def _restore_deleted(zip_path: Path, dest: Path) -> None:
    """Extract again, one by one, the AVIs of an extracted zip that are no longer in ``dest`` (a
    corrupt one the user deleted); the others keep their files, so their frame caches stay valid."""
    try:
        with zipfile.ZipFile(zip_path) as z:
            gone = [m for m in z.infolist() if not m.is_dir() and m.filename.endswith(".avi")
                    and not (dest / Path(m.filename).name).is_file()]
            for m in gone:
                with z.open(m) as src:
                    atomic_write(dest / Path(m.filename).name, lambda out: shutil.copyfileobj(src, out, 1 << 20))
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise _damaged_zip(zip_path, err) from None
