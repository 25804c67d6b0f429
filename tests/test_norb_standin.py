"""The smallNORB stand-in: real-format files, the factor grid, idempotence, determinism, and images
that look like lit objects (not noise) whose category can be told at 32 px."""

from __future__ import annotations

import json

import numpy as np
import pytest

from drnet_lib.data import norb, norb_standin
from drnet_lib.data.norb import (CATEGORIES, SPLITS, TEST_INSTANCES, TRAIN_INSTANCES, file_name,
                                 read_matrix, read_split)
from drnet_lib.data.norb_standin import SIZES, render_views, write_standin

BG = int(np.round(255 * norb_standin.BACKGROUND))
TINY = {"image_size": 16, "elevations": (2,), "azimuths": (0, 9), "lightings": (5,)}


@pytest.fixture(scope="module")
def ci_dir(tmp_path_factory):
    return write_standin(tmp_path_factory.mktemp("norb"), "ci", seed=0, progress=False, workers=2)


def _files(folder):
    return {(s, k): folder / file_name(s, k) for s in SPLITS for k in norb.KINDS}


def test_ci_files_load_with_the_real_reader(ci_dir):
    grid = SIZES["ci"]
    n = 5 * 5 * len(grid["elevations"]) * len(grid["azimuths"]) * len(grid["lightings"])
    S = grid["image_size"]
    for split in SPLITS:
        dat, cat, info = (read_matrix(ci_dir / file_name(split, k)) for k in norb.KINDS)
        assert dat.shape == (n, 2, S, S) and dat.dtype == np.uint8
        assert cat.shape == (n,) and cat.dtype == np.int32
        assert info.shape == (n, 4) and info.dtype == np.int32
        assert len(read_split(ci_dir, split)) == n


def test_factor_grid_order_and_splits(ci_dir):
    grid = SIZES["ci"]
    for split, instances in zip(SPLITS, (TRAIN_INSTANCES, TEST_INSTANCES)):
        cat = read_matrix(ci_dir / file_name(split, "cat"))
        info = read_matrix(ci_dir / file_name(split, "info"))
        keys = np.column_stack([cat, info])               # category, instance, elev, az*2, light
        # every (category, instance, elevation, azimuth, lighting) once, in sorted order
        assert np.array_equal(keys, np.unique(keys, axis=0))
        assert set(cat.tolist()) == set(range(len(CATEGORIES)))
        for c in range(len(CATEGORIES)):
            assert set(info[cat == c, 0].tolist()) == set(instances)
        assert set(info[:, 1].tolist()) == set(grid["elevations"])
        assert set(info[:, 2].tolist()) == {2 * a for a in grid["azimuths"]}
        assert set(info[:, 3].tolist()) == set(grid["lightings"])


def test_sidecar_records_the_factors(ci_dir):
    side = json.loads((ci_dir / norb_standin.SIDECAR).read_text())
    assert (side["size"], side["seed"], side["format_version"]) == ("ci", 0, norb_standin.FORMAT_VERSION)
    assert side["image_size"] == SIZES["ci"]["image_size"]
    assert side["splits"] == {"training": list(TRAIN_INSTANCES), "testing": list(TEST_INSTANCES)}
    origins = [p["azimuth_origin_deg"] for cat in side["instances"].values() for p in cat.values()]
    assert len(origins) == 50 and len(set(origins)) == 50     # toys are not aligned


def test_file_records_match_render_views(ci_dir):
    """The record for (truck, instance 6, elevation 50, azimuth 100, lighting 3) is that view."""
    dat = read_matrix(ci_dir / file_name("training", "dat"))
    cat = read_matrix(ci_dir / file_name("training", "cat"))
    info = read_matrix(ci_dir / file_name("training", "info"))
    row = np.flatnonzero((cat == 3) & (info[:, 0] == 6) & (info[:, 1] == 4) & (info[:, 2] == 10)
                         & (info[:, 3] == 3))
    assert row.size == 1
    for cam, name in enumerate(("left", "right")):
        view = render_views(3, 6, [50], [100], size=32, lightings=[3], camera=name)[0, 0, 0]
        assert np.array_equal(dat[row[0], cam], view)
    assert not np.array_equal(dat[row[0], 0], dat[row[0], 1])   # the stereo pair differs


def test_idempotent_and_seeded(tmp_path, monkeypatch):
    monkeypatch.setitem(SIZES, "tiny", TINY)
    folder = write_standin(tmp_path / "a", "tiny", seed=1, progress=False, workers=1)
    stamps = {key: p.stat().st_mtime_ns for key, p in _files(folder).items()}
    data = {key: p.read_bytes() for key, p in _files(folder).items()}
    assert write_standin(tmp_path / "a", "tiny", seed=1, progress=False, workers=1) == folder
    assert {key: p.stat().st_mtime_ns for key, p in _files(folder).items()} == stamps
    # another seed is another data set: the call renders again and the images change
    write_standin(tmp_path / "a", "tiny", seed=2, progress=False, workers=1)
    assert json.loads((folder / norb_standin.SIDECAR).read_text())["seed"] == 2
    assert (folder / file_name("training", "dat")).read_bytes() != data["training", "dat"]
    # a missing file is rendered again even when the sidecar is there
    (folder / file_name("testing", "cat")).unlink()
    write_standin(tmp_path / "a", "tiny", seed=2, progress=False, workers=1)
    assert (folder / file_name("testing", "cat")).exists()


def test_same_seed_same_bytes_whatever_the_workers(ci_dir, tmp_path):
    again = write_standin(tmp_path, "ci", seed=0, progress=False, workers=1)
    for (split, kind), path in _files(ci_dir).items():
        assert path.read_bytes() == (again / file_name(split, kind)).read_bytes(), (split, kind)


def test_prepare_checks_every_file_of_both_splits(ci_dir, tmp_path):
    """A damaged image file fails `drnet data prepare norb` by name (it used to pass and fail in
    training), and following its advice writes it again."""
    import shutil

    folder = norb.norb_dir(norb.standin_root(tmp_path, "ci"))
    shutil.copytree(ci_dir, folder)
    assert norb.prepare("embedded", tmp_path, "ci", progress=False) == folder
    for split in SPLITS:
        for kind in norb.KINDS:
            path = folder / file_name(split, kind)
            good = path.read_bytes()
            path.write_bytes(good[: len(good) - 40])                   # cut short
            with pytest.raises(norb.DatasetFormatError, match=rf"(?s){path}.*--size ci --root {tmp_path}"):
                norb.prepare("embedded", tmp_path, "ci", progress=False)
            path.write_bytes(good)
    path = folder / file_name("testing", "dat")
    path.write_bytes(path.read_bytes()[:1000])
    path.unlink()                                                      # as the message says
    norb.prepare("embedded", tmp_path, "ci", progress=False)
    assert path.read_bytes() == (ci_dir / file_name("testing", "dat")).read_bytes()


def test_unknown_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown stand-in size"):
        write_standin(tmp_path, "huge", progress=False)


@pytest.mark.parametrize("category", range(5))
def test_images_are_lit_objects_not_noise(category):
    imgs = render_views(category, 0, [35, 65], [0, 120], size=96, lightings=range(6)).astype(float)
    assert imgs.shape == (2, 2, 6, 96, 96)
    for img in imgs.reshape(-1, 96, 96):
        obj = img != BG
        assert 0.03 < obj.mean() < 0.6                      # an object, on a background
        assert not obj[0].any() and not obj[-1].any() and not obj[:, 0].any() and not obj[:, -1].any()
        assert np.abs(img[obj] - BG).mean() > 10            # that stands out from it
        # smooth: horizontally neighbouring pixels are correlated (0.6-0.95 here; noise gives ~0)
        assert np.corrcoef(img[:, :-1].ravel(), img[:, 1:].ravel())[0, 1] > 0.5
    # lighting changes the shading, not the silhouette; the masks "differs from the background"
    # still disagree a little, where an object pixel happens to be shaded the background's grey
    masks = imgs != BG
    for e in range(2):
        for a in range(2):
            for k in range(1, 6):
                iou = (masks[e, a, 0] & masks[e, a, k]).sum() / (masks[e, a, 0] | masks[e, a, k]).sum()
                assert iou > 0.93
                assert np.abs(imgs[e, a, 0] - imgs[e, a, k])[masks[e, a, 0]].mean() > 5
    # azimuth (and elevation) change the image
    assert np.abs(imgs[0, 0] - imgs[0, 1]).mean() > 3
    assert np.abs(imgs[0, 0] - imgs[1, 0]).mean() > 3


def test_instances_of_a_category_differ():
    for category in range(5):
        views = [render_views(category, i, [40], [0, 180], size=32, lightings=[2]) for i in range(10)]
        for i in range(1, 10):
            assert np.abs(views[0].astype(float) - views[i]).mean() > 1, (category, i)


def test_toys_fit_inside_the_view():
    """Every toy lies inside the bounding sphere the tracer culls to (else it would be clipped)."""
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(3, 4000))
    p = tuple(norb_standin.HALF_WIDTH * dirs / np.linalg.norm(dirs, axis=0))
    for c in range(5):
        for i in range(10):
            parts = norb_standin._parts(c, norb_standin.instance_params(c, i))
            assert norb_standin._sdf(parts, p).min() > 0.02, (CATEGORIES[c], i)


def test_categories_are_told_apart_at_32px_on_held_out_toys(ci_dir):
    """1-nearest-neighbour on 8x8 thumbnails, trained on the training toys, scores far above
    chance (0.2) on the test toys: the categories differ in shape, not only per toy."""
    tr, te = read_split(ci_dir, "training"), read_split(ci_dir, "testing")

    def thumbs(split):
        x = split.images[:, 0].astype(np.float32)
        return x.reshape(len(x), 8, 4, 8, 4).mean((2, 4)).reshape(len(x), -1)

    a, b = thumbs(tr), thumbs(te)
    dist = (b * b).sum(1)[:, None] - 2 * b @ a.T + (a * a).sum(1)[None]
    accuracy = (tr.category[dist.argmin(1)] == te.category).mean()
    assert accuracy > 0.8
