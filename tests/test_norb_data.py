"""smallNORB format, loader, azimuth-sweep clips and classifiers on frozen codes."""

from __future__ import annotations

import dataclasses
import gzip
import struct

import numpy as np
import pytest
import torch

from drnet_lib.classification import category_scores, chance_accuracy, encode_sweeps
from drnet_lib.config import get_config
from drnet_lib.data import norb, registry
from drnet_lib.data.sweeps import norb_sweeps
from drnet_lib.data.registry import ChecksumError, DatasetFormatError
from drnet_lib.models import DrNet
from drnet_lib.reproduce import grid_points
from drnet_lib.results import grid_tag, results_path

UINT8, INT32 = 0x1E3D4C55, 0x1E3D4C54


def independent_matrix_bytes(magic: int, shape: tuple, payload: bytes) -> bytes:
    """The smallNORB header written from the format's description, without drnet_lib's writer."""
    dims = list(shape) + [1] * (3 - len(shape))
    return struct.pack("<ii", magic, len(shape)) + struct.pack(f"<{len(dims)}i", *dims) + payload


def write_independent_split(folder, split: str, n_per_cat: int = 1, size: int = 6, gz: bool = True,
                            seed: int = 0):
    """A tiny split written record by record in a scrambled order, as an outside tool might."""
    rng = np.random.default_rng(seed)
    instances = norb.TRAIN_INSTANCES if split == "training" else norb.TEST_INSTANCES
    records = [(c, i, e, a, light) for c in range(5) for i in instances[:n_per_cat]
               for e in (0, 8) for a in range(18) for light in (0, 5)]
    rng.shuffle(records)
    images = rng.integers(0, 256, (len(records), 2, size, size), dtype=np.uint8)
    cat = struct.pack(f"<{len(records)}i", *[r[0] for r in records])
    info = b"".join(struct.pack("<4i", r[1], r[2], 2 * r[3], r[4]) for r in records)
    folder.mkdir(parents=True, exist_ok=True)
    blobs = {"dat": independent_matrix_bytes(UINT8, images.shape, images.tobytes()),
             "cat": independent_matrix_bytes(INT32, (len(records),), cat),
             "info": independent_matrix_bytes(INT32, (len(records), 4), info)}
    for kind, blob in blobs.items():
        name = norb.file_name(split, kind)
        if gz:
            (folder / name).write_bytes(gzip.compress(blob))
        else:
            (folder / name[:-3]).write_bytes(blob)
    return records, images


# -- the binary matrix format ----------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_independently_written_files_load_with_right_shapes_labels_and_info(tmp_path, gz):
    records, images = write_independent_split(tmp_path, "training", gz=gz)
    name = lambda kind: norb.file_name("training", kind)[: None if gz else -3]
    dat, cat, info = (norb.read_matrix(tmp_path / name(k)) for k in ("dat", "cat", "info"))
    assert dat.shape == images.shape and dat.dtype == np.uint8 and np.array_equal(dat, images)
    assert cat.shape == (len(records),) and cat.dtype == np.int32
    assert info.shape == (len(records), 4)
    assert cat.tolist() == [r[0] for r in records]
    assert info[:, 2].tolist() == [2 * r[3] for r in records]


def test_read_split_sorts_records_and_halves_azimuth(tmp_path):
    records, images = write_independent_split(tmp_path, "testing")
    split = norb.read_split(tmp_path, "testing")
    keys = np.stack([split.category, split.instance, split.elevation, split.azimuth, split.lighting], 1)
    assert np.array_equal(keys, np.array(sorted(records)))
    assert split.azimuth.max() == 17
    first = records.index(tuple(keys[0]))          # the image travels with its labels
    assert np.array_equal(split.images[0], images[first])


@pytest.mark.parametrize("dtype", ["uint8", "int32", "int16", "float32", "float64"])
def test_write_matrix_round_trips(tmp_path, dtype):
    a = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    norb.write_matrix(tmp_path / "a.mat.gz", a)
    b = norb.read_matrix(tmp_path / "a.mat.gz")
    assert b.dtype == a.dtype and np.array_equal(a, b)


def test_write_matrix_pads_small_ranks_like_the_real_files(tmp_path):
    norb.write_matrix(tmp_path / "cat.mat", np.zeros(24300, np.int32))
    assert (tmp_path / "cat.mat").stat().st_size == 97_220  # the real uncompressed cat file's size
    with pytest.raises(ValueError, match="cannot store int64"):
        norb.write_matrix(tmp_path / "x.mat", np.zeros(3, np.int64))


def _bad(tmp_path, blob: bytes, gz=True):
    path = tmp_path / ("bad.mat.gz" if gz else "bad.mat")
    path.write_bytes(gzip.compress(blob) if gz else blob)
    return path


def test_wrong_magic_number_names_file_and_fix(tmp_path):
    path = _bad(tmp_path, independent_matrix_bytes(0x12345678, (2,), b"\0" * 8))
    with pytest.raises(DatasetFormatError, match=r"bad\.mat\.gz.*magic number 0x12345678.*fetch it again"):
        norb.read_matrix(path)


def test_truncated_data_and_header_and_trailing_bytes(tmp_path):
    good = independent_matrix_bytes(UINT8, (4, 2, 3, 3), bytes(72))
    with pytest.raises(DatasetFormatError, match="truncated.*needs 72 data bytes, found 50"):
        norb.read_matrix(_bad(tmp_path, good[:-22]))
    with pytest.raises(DatasetFormatError, match="truncated.*header"):
        norb.read_matrix(_bad(tmp_path, good[:12], gz=False))
    with pytest.raises(DatasetFormatError, match="5 bytes of trailing garbage"):
        norb.read_matrix(_bad(tmp_path, good + b"extra"))


def test_cut_short_gzip_is_reported(tmp_path):
    blob = gzip.compress(independent_matrix_bytes(UINT8, (50, 2, 8, 8), bytes(6400)))
    path = tmp_path / "cut.mat.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DatasetFormatError, match=r"cut\.mat\.gz: truncated gzip"):
        norb.read_matrix(path)


def test_files_that_disagree_are_refused(tmp_path):
    write_independent_split(tmp_path, "training")
    norb.write_matrix(tmp_path / norb.file_name("training", "cat"), np.zeros(7, np.int32))
    with pytest.raises(DatasetFormatError, match="to match"):
        norb.read_split(tmp_path, "training")


def test_an_out_of_range_value_names_the_file_it_is_in(tmp_path):
    write_independent_split(tmp_path, "training")
    cat_path = tmp_path / norb.file_name("training", "cat")
    cat = norb.read_matrix(cat_path)
    cat[3] = 7
    norb.write_matrix(cat_path, cat)
    with pytest.raises(DatasetFormatError, match=r"training-cat\.mat\.gz: category outside 0\.\.4"):
        norb.read_split(tmp_path, "training")
    with pytest.raises(DatasetFormatError, match=r"training-cat\.mat\.gz: category outside"):
        norb.check_split(tmp_path, "training")
    write_independent_split(tmp_path, "training")
    info_path = tmp_path / norb.file_name("training", "info")
    info = norb.read_matrix(info_path)
    info[0, 3] = 6
    norb.write_matrix(info_path, info)
    with pytest.raises(DatasetFormatError, match=r"training-info\.mat\.gz: lighting outside 0\.\.5"):
        norb.read_split(tmp_path, "training")


def test_the_other_splits_files_in_a_splits_place_are_refused(tmp_path):
    """smallNORB's splits hold disjoint toys: testing files copied over the training ones would
    train on the test toys without a word."""
    write_independent_split(tmp_path / "testing", "testing")
    for kind in norb.KINDS:
        (tmp_path / norb.file_name("training", kind)).write_bytes(
            (tmp_path / "testing" / norb.file_name("testing", kind)).read_bytes())
    for read in (norb.read_split, norb.check_split):
        with pytest.raises(DatasetFormatError, match=r"training-info\.mat\.gz: instances \[0\] are not "
                                                     r"training toys .*4, 6, 7, 8, 9"):
            read(tmp_path, "training")


@pytest.mark.parametrize("gz", [True, False])
def test_matrix_header_checks_the_size_without_reading_the_data(tmp_path, gz):
    good = independent_matrix_bytes(UINT8, (40, 2, 8, 8), bytes(range(256)) * 20)
    assert norb.matrix_header(_bad(tmp_path, good, gz)) == (np.dtype("u1"), (40, 2, 8, 8))
    if gz:
        blob = gzip.compress(good)
        for cut in (len(blob) - 1, len(blob) // 2, 30):              # a cut-short copy
            (tmp_path / "bad.mat.gz").write_bytes(blob[:cut])
            with pytest.raises(DatasetFormatError, match=r"bad\.mat\.gz: (truncated|corrupt)"):
                norb.matrix_header(tmp_path / "bad.mat.gz")
        (tmp_path / "bad.mat.gz").write_bytes(blob[:10])
        with pytest.raises(DatasetFormatError, match="truncated gzip"):
            norb.matrix_header(tmp_path / "bad.mat.gz")
    short, long = ("needs 5144 bytes uncompressed, the gzip trailer records 5024",
                   "needs 5144 bytes uncompressed, the gzip trailer records 5149") if gz else (
                   "truncated.*needs 5120 data bytes, found 5000", "5 bytes of trailing garbage")
    with pytest.raises(DatasetFormatError, match=short):
        norb.matrix_header(_bad(tmp_path, good[:-120], gz))
    with pytest.raises(DatasetFormatError, match=long):
        norb.matrix_header(_bad(tmp_path, good + b"extra", gz))
    with pytest.raises(DatasetFormatError, match="magic number 0x12345678"):
        norb.matrix_header(_bad(tmp_path, independent_matrix_bytes(0x12345678, (2,), bytes(8)), gz))
    (tmp_path / "empty.mat.gz").write_bytes(b"")
    with pytest.raises(DatasetFormatError, match="empty.mat.gz: truncated"):
        norb.matrix_header(tmp_path / "empty.mat.gz")


def test_check_split_catches_what_read_split_would(tmp_path):
    records, _ = write_independent_split(tmp_path, "testing")
    assert norb.check_split(tmp_path, "testing") == len(records)
    dat = tmp_path / norb.file_name("testing", "dat")
    blob = dat.read_bytes()
    dat.write_bytes(blob[: len(blob) * 2 // 3])
    with pytest.raises(DatasetFormatError, match=r"testing-dat\.mat\.gz: truncated"):
        norb.check_split(tmp_path, "testing")


def test_a_bad_standin_file_is_written_again_not_fetched(tmp_path):
    """A file of the stand-in that prepare writes has no mirror: its advice is prepare's command."""
    folder = norb.norb_dir(norb.standin_root(tmp_path, "ci"))
    folder.mkdir(parents=True)
    path = folder / norb.file_name("training", "dat")
    blob = gzip.compress(independent_matrix_bytes(UINT8, (4, 2, 3, 3), bytes(72)))
    for damaged in (blob[: len(blob) // 2], gzip.compress(b"garbage")):
        path.write_bytes(damaged)
        for read in (norb.read_matrix, norb.matrix_header):
            with pytest.raises(DatasetFormatError) as info:
                read(path)
            msg = str(info.value)
            assert msg.startswith(str(path)) and "fetch" not in msg
            assert f"delete {path} and run `drnet data prepare norb --size ci --root {tmp_path}` to " \
                   f"write it again" in msg
    # the real files keep their advice
    (tmp_path / "smallnorb").mkdir()
    real = tmp_path / "smallnorb" / path.name
    real.write_bytes(gzip.compress(b"garbage"))
    with pytest.raises(DatasetFormatError, match="fetch it again.*--source real"):
        norb.read_matrix(real)


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="drnet data prepare norb"):
        norb.read_split(tmp_path, "training")


def test_registry_holds_the_six_published_files():
    names = [norb.file_name(s, k) for s in norb.SPLITS for k in ("dat", "cat", "info")]
    assert names[0] == "smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat.gz"
    for name in names:
        entry = registry.REGISTRY[f"norb/{name}"]
        assert entry.subdir == "smallnorb" and entry.urls[0].endswith(name)


def test_a_bad_local_copy_fails_its_checksum(tmp_path):
    name = norb.file_name("training", "cat")
    path = norb.norb_dir(tmp_path) / name
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the real file")
    with pytest.raises(ChecksumError, match=f"{name}.*sha256 checksum mismatch.*delete"):
        registry.fetch(f"norb/{name}", tmp_path, progress=False)
    assert path.read_bytes() == b"not the real file"  # nothing is deleted behind the user's back


def test_real_source_downloads_checks_and_loads(tmp_path, server, monkeypatch):
    """The "real" path end to end, against files served over HTTP in place of cs.nyu.edu."""
    served, url = server
    for split in norb.SPLITS:
        write_independent_split(served, split)
    for split in norb.SPLITS:
        for kind in ("dat", "cat", "info"):
            key = f"norb/{norb.file_name(split, kind)}"
            sha = registry.sha256_of(served / norb.file_name(split, kind))
            monkeypatch.setitem(registry.REGISTRY, key,
                                dataclasses.replace(registry.REGISTRY[key], sha256=sha, mirrors=(url,)))
    test = norb.load_norb("real", "test", tmp_path / "data", progress=False)
    assert len(test) == 5 * 1 * 2 * 18 * 2 and set(test.instance) == {0}
    assert (norb.norb_dir(tmp_path / "data") / norb.file_name("training", "dat")).exists()


# -- azimuth sweeps --------------------------------------------------------------------------------
@pytest.fixture
def tiny_split(tmp_path):
    write_independent_split(tmp_path, "training", size=8)
    return norb.read_split(tmp_path, "training")


def test_sweeps_hold_one_object_at_every_azimuth_in_order(tiny_split):
    bank = norb_sweeps(tiny_split, image_size=8)
    assert len(bank) == 5 * 2 * 2 and bank.frames.shape == (20, 18, 1, 8, 8)
    s = 7
    rows = np.nonzero((tiny_split.category == int(bank.category[s])) & (tiny_split.instance == int(bank.instance[s]))
                      & (tiny_split.elevation == int(bank.elevation[s])) & (tiny_split.lighting == int(bank.lighting[s])))[0]
    order = rows[np.argsort(tiny_split.azimuth[rows])]
    assert np.array_equal(bank.frames[s, :, 0].numpy(), tiny_split.images[order, 0])  # left camera


def test_clips_wrap_round_the_azimuth_circle(tiny_split):
    bank = norb_sweeps(tiny_split, image_size=4)        # resized 8 -> 4 by area averaging
    factors = bank.all_sweeps().subset([3])
    factors.start[:] = 16
    clip = bank.render(factors, torch.arange(4))
    expected = bank.frames[3, [16, 17, 0, 1]].float() / 255
    assert torch.equal(clip[0], expected)
    g = torch.Generator().manual_seed(0)
    frames, f = bank.sample_clips(6, g, 5)
    assert frames.shape == (6, 5, 1, 4, 4) and 0 <= frames.min() and frames.max() <= 1
    assert int(f.sequence.max()) < len(bank) and int(f.start.max()) < 18


def test_a_sweep_with_a_missing_azimuth_is_refused(tiny_split):
    keep = np.ones(len(tiny_split), bool)
    keep[5] = False
    broken = norb.NorbSplit(*(getattr(tiny_split, n)[keep] for n in
                              ("images", "category", "instance", "elevation", "azimuth", "lighting")))
    with pytest.raises(ValueError, match="all 18 azimuths"):
        norb_sweeps(broken, image_size=8)


# -- classifiers on frozen codes --------------------------------------------------------------------
def test_codes_of_every_frame_with_their_factors(tiny_split):
    cfg = get_config("norb", "smoke")
    bank = norb_sweeps(tiny_split, image_size=32)
    torch.manual_seed(0)
    codes = encode_sweeps(DrNet(cfg.model), bank, batch_size=7)
    n = len(bank) * 18
    assert codes["content"].shape == (n, cfg.model.content_dim) and codes["pose"].shape == (n, cfg.model.pose_dim)
    assert np.array_equal(codes["category"], bank.category.repeat_interleave(18).numpy())
    assert codes["azimuth"][:19].tolist() == list(range(18)) + [0]


def test_classifiers_find_category_in_informative_codes_only():
    rng = np.random.default_rng(0)
    def codes(n):
        y = rng.integers(0, 5, n)
        informative = np.eye(5)[y] * 6 + rng.normal(size=(n, 5))
        return {"content": informative, "pose": rng.normal(size=(n, 4)), "category": y}
    scores = category_scores(codes(600), codes(300), hidden=16, max_iter=100)
    for kind in ("mlp", "linear"):
        assert scores["content"][kind] > 0.9
        assert scores["pose"][kind] < 0.35
    assert chance_accuracy(np.array([1, 1, 2]), np.array([1, 2, 3, 4])) == 0.25


# -- grid runs -------------------------------------------------------------------------------------
def test_grid_points_tags_and_paths(tmp_path):
    points = grid_points({"adversarial_weight": [0, 0.0001], "pose_dim": [2, 10]})
    assert len(points) == 4 and points[1] == {"adversarial_weight": 0, "pose_dim": 10}
    tag = grid_tag(points[3])
    assert tag == "adversarial_weight0.0001_pose_dim10"
    assert results_path(tmp_path, "cpu", "norb_grid", 0, tag).name == f"norb_grid_{tag}_seed0.json"
    assert grid_points(None) == [{}]
