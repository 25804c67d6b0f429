"""The chairs data layer: the stand-in writes the authors' PNG tree, the loader reads it back (with
its cache and its errors), the object split, Aubry et al.'s converter on a fake archive, and the
registry path for a file whose sha256 is not published."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import random
import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image

from drnet_lib.data import chairs, chairs_standin, registry
from drnet_lib.data.chairs import (AUTHORS_ELEVATIONS, cache_path, chairs_dir, frame_name,
                                   load_chairs_tree, split_objects)
from drnet_lib.data.chairs_aubry import AUBRY_SIDECAR, convert_aubry
from drnet_lib.data.chairs_standin import SIZES, write_standin
from drnet_lib.data.registry import ChecksumError, DatasetFormatError

BG = np.round(255 * np.asarray(chairs_standin.BACKGROUND)).astype(np.uint8)
TINY = {"chairs": 2, "elevations": ("0.50",), "azimuths": 12, "image_size": 32}


@pytest.fixture(scope="module")
def ci_root(tmp_path_factory):
    return write_standin(tmp_path_factory.mktemp("chairs"), "ci", seed=0, progress=False, workers=1)


@pytest.fixture(scope="module")
def ci_tree(ci_root):
    return load_chairs_tree(ci_root, cache=False)


def _all_files(root):
    return sorted(p for p in chairs_dir(root).rglob("*") if p.is_file())


# --- the stand-in's tree ------------------------------------------------------------------------

def test_ci_tree_has_the_authors_layout_and_loads(ci_root, ci_tree):
    grid = SIZES["ci"]
    folder = chairs_dir(ci_root)
    assert folder.parts[-3:] == ("suncg", "single_object", "chair")
    ids = [chairs_standin.object_id(i) for i in range(grid["chairs"])]
    assert sorted(d.name for d in folder.iterdir() if d.is_dir()) == ids
    for obj in ids:
        assert sorted(d.name for d in (folder / obj).iterdir()) == sorted(
            f"elevation_{e}" for e in grid["elevations"])
        for e in grid["elevations"]:
            assert sorted(p.name for p in (folder / obj / f"elevation_{e}").iterdir()) == sorted(
                frame_name(i) for i in range(1, 37))
    with Image.open(folder / ids[0] / "elevation_1.25" / "p200-64_1.png") as im:
        assert (im.format, im.mode, im.size) == ("PNG", "RGB", (64, 64))
    assert ci_tree.images.shape == (grid["chairs"], 2, 36, 64, 64, 3)
    assert ci_tree.images.dtype == np.uint8
    assert ci_tree.object_ids == tuple(ids)
    assert ci_tree.elevation_names == ("-0.25", "1.25") and ci_tree.elevations == (-0.25, 1.25)
    assert ci_tree.num_azimuths == 36 and len(ci_tree) == grid["chairs"]


def test_sizes_use_the_authors_folder_names_and_a_documented_mapping():
    assert set(SIZES["cpu"]["elevations"]) == set(AUTHORS_ELEVATIONS)
    assert set(chairs_standin.ELEVATION_DEG) == set(AUTHORS_ELEVATIONS)
    degs = [chairs_standin.ELEVATION_DEG[e] for e in sorted(AUTHORS_ELEVATIONS, key=float)]
    assert degs == sorted(degs) and len(set(degs)) == 5           # monotone in the folder value
    assert all(s["azimuths"] == 36 and s["image_size"] == 64 for s in (SIZES["ci"], SIZES["cpu"]))


def test_sidecar_records_sizes_seed_params_and_mapping(ci_root):
    side = json.loads((chairs_dir(ci_root) / chairs_standin.SIDECAR).read_text())
    assert (side["size"], side["seed"], side["format_version"]) == ("ci", 0, chairs_standin.FORMAT_VERSION)
    assert side["elevation_deg"] == {"-0.25": 15.0, "1.25": 35.0}
    assert side["azimuths_deg"] == [10.0 * k for k in range(36)]
    assert side["chairs"]["standin_0003"] == chairs_standin.chair_params(3, 0)
    assert len(side["chairs"]) == SIZES["ci"]["chairs"]


def test_files_are_the_renders_of_their_chairs(ci_tree):
    params = chairs_standin.chair_params(5, 0)
    views = chairs_standin.render_chair(params, [35.0], [0.0, 170.0], 64)
    assert np.array_equal(ci_tree.images[5, 1, 0], views[0, 0])
    assert np.array_equal(ci_tree.images[5, 1, 17], views[0, 1])


def test_idempotent_reseeded_and_repaired(tmp_path, monkeypatch):
    monkeypatch.setitem(SIZES, "tiny", TINY)
    root = write_standin(tmp_path / "a", "tiny", seed=1, progress=False, workers=1)
    files = _all_files(root)
    assert len(files) == 2 * 12 + 1
    stamps = {p: p.stat().st_mtime_ns for p in files}
    assert write_standin(tmp_path / "a", "tiny", seed=1, progress=False, workers=1) == root
    assert {p: p.stat().st_mtime_ns for p in _all_files(root)} == stamps
    before = load_chairs_tree(root, image_size=32, cache=False).images
    # another seed is another data set: rendered again, and the images change
    write_standin(tmp_path / "a", "tiny", seed=2, progress=False, workers=1)
    assert json.loads((chairs_dir(root) / chairs_standin.SIDECAR).read_text())["seed"] == 2
    assert not np.array_equal(load_chairs_tree(root, image_size=32, cache=False).images, before)
    # a missing frame is rendered again even though the sidecar is there
    lost = chairs_dir(root) / "standin_0001" / "elevation_0.50" / frame_name(7)
    lost.unlink()
    write_standin(tmp_path / "a", "tiny", seed=2, progress=False, workers=1)
    assert lost.exists()


def test_same_seed_same_bytes_whatever_the_workers(tmp_path, monkeypatch):
    monkeypatch.setitem(SIZES, "tiny", TINY)
    a = write_standin(tmp_path / "a", "tiny", seed=3, progress=False, workers=1)
    b = write_standin(tmp_path / "b", "tiny", seed=3, progress=False, workers=2)
    fa, fb = _all_files(a), _all_files(b)
    assert [p.relative_to(a) for p in fa] == [p.relative_to(b) for p in fb]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(fa, fb))


def test_refuses_unknown_sizes_and_foreign_trees(tmp_path):
    with pytest.raises(ValueError, match="unknown stand-in size"):
        write_standin(tmp_path, "huge", progress=False)
    (chairs_dir(tmp_path) / "1a2b3c_real_chair" / "elevation_1.25").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="1a2b3c_real_chair"):
        write_standin(tmp_path, "ci", progress=False, workers=1)
    assert (chairs_dir(tmp_path) / "1a2b3c_real_chair").is_dir()       # nothing deleted


def test_chairs_fit_inside_the_view():
    """Every chair lies inside the sphere the tracer culls to, so none is clipped."""
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(3, 4000))
    p = tuple(chairs_standin.HALF_WIDTH * dirs / np.linalg.norm(dirs, axis=0))
    for i in range(150):
        parts, mats = chairs_standin.chair_parts(chairs_standin.chair_params(i, 0))
        assert len(parts) == len(mats)
        d = chairs_standin.smooth_union(parts, p, chairs_standin.BLEND)
        assert np.isfinite(d).all() and d.min() > 0.02, i


# --- the images look like chairs turning ----------------------------------------------------------

def test_images_are_objects_on_a_background(ci_tree):
    imgs = ci_tree.images.reshape(-1, 64, 64, 3).astype(float)
    obj = (ci_tree.images.reshape(-1, 64, 64, 3) != BG).any(-1)
    for img, m in zip(imgs, obj):
        assert 0.05 < m.mean() < 0.6                                  # an object...
        assert not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())  # ...in the frame
        assert np.abs(img[m] - BG).mean() > 20                        # that stands out
        grey = img.mean(-1)
        # smooth: neighbouring pixels are strongly correlated (noise would give ~0)
        assert np.corrcoef(grey[:, :-1].ravel(), grey[:, 1:].ravel())[0, 1] > 0.6
        assert np.corrcoef(grey[:-1].ravel(), grey[1:].ravel())[0, 1] > 0.6


def test_chairs_differ_in_colour_and_shape(ci_tree):
    imgs = ci_tree.images[:, 0, 0].astype(float)                       # every chair, from the front
    n = len(imgs)
    mean_rgb = []
    for img in imgs:
        m = (img != BG).any(-1)
        mean_rgb.append(img[m].mean(0))
    for i in range(n):
        for j in range(i + 1, n):
            assert np.abs(imgs[i] - imgs[j]).mean() > 3, (i, j)
    # colours are per chair: the object colour spread across chairs is wide
    assert np.ptp(np.array(mean_rgb), axis=0).max() > 60


def test_azimuth_turns_the_chair_round_a_full_circle(ci_tree):
    x = ci_tree.images.astype(float)                                   # (O, E, 36, 64, 64, 3)

    def apart(k):     # mean |difference| between views k steps apart, per chair and elevation
        return np.abs(x - np.roll(x, -k, axis=2)).mean(axis=(3, 4, 5))   # (O, E, 36)

    steps = apart(1)                                                   # includes frame 36 -> 1
    assert (steps > 0.3).all()                                         # every step changes the image
    d1, d2, d3, d18 = (apart(k).mean(2) for k in (1, 2, 3, 18))
    # the further apart, the more different: neighbours differ less than views 20 or 30 deg
    # apart, and less than opposite views (which a chair's mirror symmetry makes alike)
    assert (d1 < d2).all() and (d2 < d3).all() and (d1 < d18).all()
    # the wrap-round step (azimuth 350 -> 0) is an ordinary step: the turn is a full circle
    assert (steps[:, :, 35] < 1.5 * np.median(steps, axis=2)).all()


def test_chairs_are_aligned_front_at_azimuth_zero(ci_tree):
    """Every chair faces the camera at azimuth 0: its silhouette is mirror-symmetric there and
    at 180 deg (a chair is symmetric left to right), not from the side; seen from its left
    (frame 10, 90 deg) the backrest, the top of the chair, is on the right of the image."""
    masks = (ci_tree.images != BG).any(-1)                              # (O, E, 36, 64, 64)
    asym = (masks ^ masks[..., ::-1]).mean(axis=(-1, -2))
    assert (asym[:, :, 0] < 0.003).all() and (asym[:, :, 18] < 0.003).all()
    assert (asym[:, :, 9] > 0.015).all() and (asym[:, :, 27] > 0.015).all()

    def top_centre(mask):   # column of the top fifth of the object, relative to the middle
        rows = np.flatnonzero(mask.any(1))
        top = mask[rows[0]:rows[0] + max(1, (rows[-1] - rows[0]) // 5)]
        return np.nonzero(top)[1].mean() - 31.5

    for chair in masks:
        for views in chair:
            assert top_centre(views[9]) > 5 and top_centre(views[27]) < -5


# --- the object split -----------------------------------------------------------------------------

def test_split_is_sorted_deterministic_and_skips_nobody():
    ids = [f"obj{i:02d}" for i in range(20)]
    shuffled = ids[:]
    random.Random(0).shuffle(shuffled)
    train, test = split_objects(shuffled)
    assert (train, test) == split_objects(ids) == (ids[:17], ids[17:])
    assert not set(train) & set(test) and sorted(train + test) == ids
    assert split_objects(ids[:8]) == (ids[:6], ids[6:8])
    assert split_objects(ids[:2]) == (ids[:1], ids[1:2])             # at least one each
    assert split_objects(ids, 0.5) == (ids[:10], ids[10:])
    with pytest.raises(ValueError, match="train_fraction must lie strictly between 0 and 1, got 1.0"):
        split_objects(ids, 1.0)
    with pytest.raises(ValueError, match="object ids must be unique; repeated: a"):
        split_objects(["a", "a"])


def test_select_keeps_the_objects_asked_for(ci_tree):
    _, test = split_objects(ci_tree.object_ids)
    sub = ci_tree.select(test)
    assert sub.object_ids == tuple(test) and sub.images.shape[0] == len(test)
    assert np.array_equal(sub.images[0], ci_tree.images[ci_tree.object_ids.index(test[0])])


# --- loader errors and the cache, on small hand-made trees ----------------------------------------

def _make_tree(root, objects=("b_chair", "a_chair"), elevations=("0.50", "-1.00"), frames=3, size=64):
    for o, obj in enumerate(objects):
        for e, elev in enumerate(elevations):
            sub = chairs_dir(root) / obj / f"elevation_{elev}"
            sub.mkdir(parents=True, exist_ok=True)
            for i in range(1, frames + 1):
                img = np.full((size, size, 3), 200, np.uint8)
                img[10:30, 10:30] = (40 * o, 20 * e, 10 * i)
                Image.fromarray(img).save(sub / frame_name(i))
    return root


def test_hand_made_tree_sorted_objects_elevations_and_frame_order(tmp_path):
    tree = load_chairs_tree(_make_tree(tmp_path, frames=11), cache=False)
    assert tree.object_ids == ("a_chair", "b_chair")                 # sorted, not listdir order
    assert tree.elevation_names == ("-1.00", "0.50")                  # by value
    assert tree.images.shape == (2, 2, 11, 64, 64, 3)
    # frame 10 comes after frame 9 (numeric, not string, order); b_chair is object 0 when made
    assert tuple(tree.images[1, 1, 9, 15, 15]) == (0, 0, 100)
    assert tuple(tree.images[0, 0, 1, 15, 15]) == (40, 20, 20)


@pytest.mark.parametrize("damage, message", [
    ("truncate", "corrupt or truncated PNG"),
    ("text", "not a PNG file"),
    ("jpeg", "not a PNG file"),
    ("small", "32x32 pixels, expected 64x64"),
    ("missing", "missing frame"),
    ("flipped", "corrupt or truncated PNG"),
])
def test_bad_frames_name_the_file_and_the_fix(tmp_path, damage, message):
    _make_tree(tmp_path)
    bad = chairs_dir(tmp_path) / "b_chair" / "elevation_0.50" / frame_name(2)
    if damage == "truncate":
        bad.write_bytes(bad.read_bytes()[:60])
    elif damage == "text":
        bad.write_text("<html>404 not found</html>")
    elif damage == "jpeg":
        Image.new("RGB", (64, 64)).save(bad, format="JPEG")
    elif damage == "small":
        Image.new("RGB", (32, 32)).save(bad, format="PNG")
    elif damage == "flipped":
        # the image data's checksum no longer matches it, as after bytes damaged in the data (which
        # can still decode, to wrong pixels, without an error): inverted here in the stored CRC
        data = bytearray(bad.read_bytes())
        at = data.index(b"IDAT")
        crc = at + 4 + int.from_bytes(data[at - 4:at], "big")
        data[crc:crc + 4] = bytes(255 - b for b in data[crc:crc + 4])
        bad.write_bytes(bytes(data))
    else:
        bad.unlink()
    with pytest.raises(DatasetFormatError, match=message) as err:
        load_chairs_tree(tmp_path)
    assert str(bad) in str(err.value) and "Fix:" in str(err.value)


def test_missing_elevation_folder_and_missing_tree(tmp_path):
    _make_tree(tmp_path)
    shutil.rmtree(chairs_dir(tmp_path) / "b_chair" / "elevation_-1.00")
    with pytest.raises(DatasetFormatError, match=r"b_chair.*elevation_-1\.00"):
        load_chairs_tree(tmp_path)
    with pytest.raises(FileNotFoundError, match="no chairs tree"):
        load_chairs_tree(tmp_path / "nowhere")


def test_cache_is_reused_and_invalidated_by_a_changed_file(tmp_path, monkeypatch):
    root = _make_tree(tmp_path)
    first = load_chairs_tree(root)
    assert cache_path(root).exists()
    real_read = chairs._read_png
    calls = []
    monkeypatch.setattr(chairs, "_read_png", lambda *a: calls.append(a) or real_read(*a))
    again = load_chairs_tree(root)
    assert calls == [] and np.array_equal(again.images, first.images)
    assert again.object_ids == first.object_ids and again.elevation_names == first.elevation_names
    # change one frame: the cache no longer matches and everything is decoded again
    changed = chairs_dir(root) / "a_chair" / "elevation_0.50" / frame_name(3)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))              # even with an old time stamp (the size differs)
    fresh = load_chairs_tree(root)
    assert len(calls) == 2 * 2 * 3
    assert fresh.images[0, 1, 2].max() == 0 and first.images[0, 1, 2].max() > 0
    # a damaged cache is ignored (with a warning) and rewritten
    cache_path(root).write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable chairs cache"):
        assert np.array_equal(load_chairs_tree(root).images, fresh.images)
    calls.clear()
    load_chairs_tree(root)
    assert calls == []


def test_no_cache_when_asked(tmp_path):
    root = _make_tree(tmp_path)
    load_chairs_tree(root, cache=False)
    assert not cache_path(root).exists()


# --- Aubry et al.'s chairs -----------------------------------------------------------------------

AZIMUTHS = [round(k * 360 / 31) for k in range(31)]


def _aubry_view(model, elev, azim, size=120, rgba=False):
    """A synthetic 'render': a bar on white whose colour encodes the azimuth, and whose place
    depends on the model (so cropping has something to do)."""
    img = np.full((size, size, 3), 255, np.uint8)
    x0 = 30 + 10 * model + (azim % 90) // 10
    img[40:80, x0:x0 + 20] = (azim * 255 // 360, 100 + elev, 50 * model)
    if rgba:                                      # transparent black round the chair
        alpha = np.where((img == 255).all(-1), 0, 255).astype(np.uint8)
        return np.dstack([np.where(alpha[..., None] > 0, img, 0).astype(np.uint8), alpha])
    return img


def _png_bytes(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _fake_aubry_tar(path, models=("m_one", "m_two"), broken="m_bad", rgba_model=None):
    entries = []
    for k, model in enumerate(models):
        n = 0
        for elev in (20, 30):
            for azim in AZIMUTHS:
                n += 1
                name = f"rendered_chairs/{model}/renders/image_{n:03d}_p{elev:03d}_t{azim:03d}_r096.png"
                entries.append((name, _png_bytes(_aubry_view(k, elev, azim, rgba=model == rgba_model))))
    if broken:                                    # one view short of the common grid
        for n, azim in enumerate(AZIMUTHS[:-1]):
            entries.append((f"rendered_chairs/{broken}/renders/image_{n:03d}_p020_t{azim:03d}_r096.png",
                            _png_bytes(_aubry_view(0, 20, azim))))
    entries.append(("rendered_chairs/all_chair_names.mat", b"not an image"))
    random.Random(1).shuffle(entries)                                  # archive order is arbitrary
    with tarfile.open(path, "w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_aubry_converter_on_a_fake_tar(tmp_path):
    tar = _fake_aubry_tar(tmp_path / "rendered_chairs.tar")
    with pytest.warns(UserWarning, match="m_bad"):
        out = convert_aubry(tar, tmp_path / "out", size=64, progress=False)
    tree = load_chairs_tree(out, cache=False)
    assert tree.object_ids == ("m_one", "m_two")                      # the broken model is skipped
    assert tree.elevation_names == ("020", "030") and tree.elevations == (20.0, 30.0)
    assert tree.images.shape == (2, 2, 31, 64, 64, 3)
    side = json.loads((chairs_dir(out) / AUBRY_SIDECAR).read_text())
    assert side["skipped_models"] == ["m_bad"] and side["azimuths_deg"]["020"] == AZIMUTHS
    # frames are in azimuth order: the bar's red channel encodes the azimuth
    for k, azim in enumerate(AZIMUTHS):
        img = tree.images[1, 1, k].astype(int)
        bar = (img != 255).any(-1)
        red = np.median(img[bar][:, 0])
        assert abs(red - azim * 255 // 360) <= 3, (k, azim, red)
    # cropped: the chair fills the frame (the union of views plus a margin), on white
    for m in range(2):
        any_view = (tree.images[m] < 250).any(-1).any(axis=(0, 1))
        rows, cols = np.flatnonzero(any_view.any(1)), np.flatnonzero(any_view.any(0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) >= 56
        assert (tree.images[m, :, :, 0, 0] == 255).all()


def test_aubry_converter_resumes_and_reads_folders_too(tmp_path):
    tar = _fake_aubry_tar(tmp_path / "rendered_chairs.tar", broken=None, rgba_model="m_two")
    out = convert_aubry(tar, tmp_path / "out", progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in _all_files(out)}
    convert_aubry(tar, tmp_path / "out", progress=False)
    stamps.pop(chairs_dir(out) / AUBRY_SIDECAR)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())       # nothing converted again
    shutil.rmtree(chairs_dir(out) / "m_two")
    convert_aubry(tar, tmp_path / "out", progress=False)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if "m_two" not in p.parts)
    assert (chairs_dir(out) / "m_two" / "elevation_030" / frame_name(31)).exists()
    # the extracted folder gives the same bytes as the archive; transparency becomes white
    with tarfile.open(tar) as t:
        for member in t:
            dest = tmp_path / "extracted" / member.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(t.extractfile(member).read())
    out2 = convert_aubry(tmp_path / "extracted", tmp_path / "out2", progress=False)
    a, b = load_chairs_tree(out, cache=False), load_chairs_tree(out2, cache=False)
    assert np.array_equal(a.images, b.images)
    assert (a.images[1, :, :, 0, 0] == 255).all()
    with pytest.raises(ValueError, match="converted at 64 px"):
        convert_aubry(tar, tmp_path / "out", size=32, progress=False)


def test_aubry_converter_refuses_other_archives(tmp_path):
    with tarfile.open(tmp_path / "other.tar", "w") as tar:
        info = tarfile.TarInfo("readme.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DatasetFormatError, match="no rendered_chairs"):
        convert_aubry(tmp_path / "other.tar", tmp_path / "out", progress=False)
    (tmp_path / "junk.tar").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(DatasetFormatError, match="not a readable tar"):
        convert_aubry(tmp_path / "junk.tar", tmp_path / "out", progress=False)


def test_aubry_archive_is_registered_without_a_made_up_hash():
    entry = registry.REGISTRY[chairs.AUBRY_KEY]
    assert entry.sha256 is None
    assert entry.urls == ["https://www.di.ens.fr/willow/research/seeing3Dchairs/data/rendered_chairs.tar"]


def test_real_source_fetches_records_the_hash_converts_and_loads(tmp_path, server, monkeypatch, capsys):
    """The "real" path end to end, with a fake archive served over HTTP in place of di.ens.fr."""
    served, url = server
    _fake_aubry_tar(served / "rendered_chairs.tar", broken=None)
    key = chairs.AUBRY_KEY
    monkeypatch.setitem(registry.REGISTRY, key, dataclasses.replace(registry.REGISTRY[key], mirrors=(url,)))
    tree = chairs.load_chairs("real", tmp_path / "data", progress=False)
    assert tree.images.shape == (2, 2, 31, 64, 64, 3)
    tar = registry.local_path(key, tmp_path / "data")
    record = registry.recorded_sha256_path(tar)
    sha = registry.sha256_of(tar)
    assert record.read_text() == f"{sha}  rendered_chairs.tar\n"
    assert sha in capsys.readouterr().err                               # printed for the user
    # later fetches check the file against the recorded hash
    assert registry.fetch(key, tmp_path / "data", progress=False) == tar
    tar.write_bytes(tar.read_bytes()[:-512])
    with pytest.raises(ChecksumError, match=f"(?s)expected {sha}.*recorded in"):
        registry.fetch(key, tmp_path / "data", progress=False)
    # ...and so is a new download, if the mirror's file changed
    tar.unlink()
    _fake_aubry_tar(served / "rendered_chairs.tar", models=("m_new",), broken=None)
    with pytest.raises(ChecksumError, match="recorded in"):
        registry.fetch(key, tmp_path / "data", progress=False)
    assert not tar.exists()
    # deleting the record accepts the new file (and records its hash)
    record.unlink()
    registry.fetch(key, tmp_path / "data", progress=False)
    assert record.read_text().split()[0] == registry.sha256_of(served / "rendered_chairs.tar")


def test_a_first_copy_that_is_not_the_archive_is_refused_and_not_recorded(tmp_path, server,
                                                                          monkeypatch):
    """No hash of the tar is published, so its first copy's is recorded; a copy that is no Aubry
    archive (an error page, an empty or cut-short file) must not be, or the real one would then be
    refused as a checksum mismatch."""
    served, url = server
    key = chairs.AUBRY_KEY
    monkeypatch.setitem(registry.REGISTRY, key, dataclasses.replace(registry.REGISTRY[key], mirrors=(url,)))
    tar = registry.local_path(key, tmp_path)
    record = registry.recorded_sha256_path(tar)
    good = _fake_aubry_tar(tmp_path / "good.tar", broken=None).read_bytes()
    for name, served_bytes in [("an error page", b"<html>503 Service Unavailable</html>"),
                               ("empty", b""), ("cut short", good[: len(good) // 2 + 100])]:
        (served / "rendered_chairs.tar").write_bytes(served_bytes)
        with pytest.raises(DatasetFormatError, match="(?s)rendered_chairs.tar.*nothing was recorded"):
            registry.fetch(key, tmp_path, progress=False)
        assert not record.exists(), name
        tar.unlink()                                    # as the message says
    (served / "rendered_chairs.tar").write_bytes(good)
    assert registry.fetch(key, tmp_path, progress=False) == tar
    assert record.read_text().split()[0] == registry.sha256_of(tar)


def test_a_cut_short_archive_is_named_however_it_is_cut(tmp_path):
    from drnet_lib.data.chairs_aubry import check_archive

    good = _fake_aubry_tar(tmp_path / "good.tar", broken=None).read_bytes()
    assert check_archive(tmp_path / "good.tar") == 2
    last_member_end = good.rstrip(b"\0")
    for cut in range(700, len(last_member_end), 4099):     # inside headers and inside data
        (tmp_path / "cut.tar").write_bytes(good[:cut])
        with pytest.raises(DatasetFormatError, match="cut.tar"):
            check_archive(tmp_path / "cut.tar")


def test_registry_accepts_none_but_still_checks_given_hashes(monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    assert registry.register("x", "f.bin", None, ("http://h/",), "x").sha256 is None
    with pytest.raises(ValueError, match="64 hex digits"):
        registry.register("x", "g.bin", "abc", ("http://h/",), "x")


def test_a_hand_placed_copy_is_recorded_and_a_bad_record_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    registry.register("x", "f.bin", None, ("http://127.0.0.1:9/",), "x")
    path = registry.local_path("x/f.bin", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"placed by hand")
    assert registry.fetch("x/f.bin", tmp_path, progress=False) == path
    assert registry.recorded_sha256_path(path).read_text().split()[0] == registry.sha256_of(path)
    registry.recorded_sha256_path(path).write_text("nonsense\n")
    with pytest.raises(ChecksumError, match="not a sha256 record"):
        registry.fetch("x/f.bin", tmp_path, progress=False)


def test_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="suncg_chairs.tar.gz"):
        chairs.prepare_chairs("authors", tmp_path)
    _make_tree(tmp_path)
    assert chairs.load_chairs("authors", tmp_path).object_ids == ("a_chair", "b_chair")
    with pytest.raises(ValueError, match="unknown suncg data source 'shapenet'; choose 'embedded' or 'real' or 'authors'"):
        chairs.prepare_chairs("shapenet", tmp_path)
    assert chairs.standin_root(tmp_path, "ci") == tmp_path / "standin" / "ci"


def test_the_fix_for_a_bad_frame_fits_where_the_tree_came_from(tmp_path):
    """The stand-in is rendered again and Aubry's chairs converted again, by a command to copy;
    the authors' tree can only be extracted again."""
    from drnet_lib.data.chairs import AUBRY_SUBDIR, _redo_hint, standin_root

    standin = chairs_dir(standin_root(tmp_path, "ci"))
    assert f"`drnet data prepare suncg --size ci --root {tmp_path}`" in _redo_hint(standin)
    aubry = chairs_dir(tmp_path / AUBRY_SUBDIR)
    assert f"`drnet data prepare suncg --source real --root {tmp_path}`" in _redo_hint(aubry)
    assert "extract the authors' chairs tarball again" in _redo_hint(chairs_dir(tmp_path))
