"""KTH data: the 00sequences.txt parser, the registry entries, the converter (resume, corrupt
videos), the stand-in written in the real layout, splits, and the clip source."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from drnet_lib.data import kth, kth_standin, kth_video, registry
from drnet_lib.data.registry import ChecksumError, DatasetFormatError

S = 64

# --- the parser, on a file written here independently of the stand-in ------------------------------

QUIRKY = (
    "\n"
    "A few lines of prose, as at the top of the real file, that mention frames and persons\n"
    "in passing: person-level splits below.\n"
    "\n"
    "Training:   person11, 12, 13, 14, 15, 16, 17, 18\n"
    "Validation: person19, 20, 21, 23, 24, 25, 01, 04\n"
    "Test:       person22, 02, 03, 05, 06, 07, 08, 09, 10 \n"
    "\n\n"
    "person01_boxing_d1\t\tframes\t1-95, 96-185, 186-245, 246-360\n"
    "person01_handclapping_d2\tframes\t1-162, 163-282, 358-472, 473-550\n"
    "person01_jogging_d4    \t\tframes\t1-64, 270-332, 194-264, 490-570\n"     # unsorted
    "\n"
    "person02_boxing_d2    \t\tframes\t1-112, 113-162, 153-254, 255-408   \r\n"  # overlap, CRLF
    "person02_handwaving_d3\t\tframes\t1-125, 126-240, 241-336\n"               # 3 ranges
    "person02_handclapping_d3\t*missing*\n"
    "person02_walking_d1 frames 1-75,152-225 , 325 - 400, 480-555\n"            # spaces only
    "\n"
)
QUIRKY_RANGES = {
    "person01_boxing_d1": [(1, 95), (96, 185), (186, 245), (246, 360)],
    "person01_handclapping_d2": [(1, 162), (163, 282), (358, 472), (473, 550)],
    "person01_jogging_d4": [(1, 64), (270, 332), (194, 264), (490, 570)],
    "person02_boxing_d2": [(1, 112), (113, 162), (153, 254), (255, 408)],
    "person02_handwaving_d3": [(1, 125), (126, 240), (241, 336)],
    "person02_walking_d1": [(1, 75), (152, 225), (325, 400), (480, 555)],
}


def test_parse_sequences_survives_the_real_quirks(tmp_path):
    path = tmp_path / "00sequences.txt"
    path.write_bytes(QUIRKY.encode())
    ranges = kth.parse_sequences(path)
    assert ranges == QUIRKY_RANGES
    assert list(ranges) == list(QUIRKY_RANGES)                 # file order
    assert kth.read_sequences(path).missing == ("person02_handclapping_d3",)
    assert kth.parse_sequences(str(path)) == QUIRKY_RANGES    # a str path works too


def test_a_byte_order_mark_does_not_hide_the_first_entry(tmp_path):
    path = tmp_path / "00sequences.txt"
    entries = QUIRKY[QUIRKY.index("person01_boxing_d1"):]          # no header: an entry comes first
    path.write_bytes(b"\xef\xbb\xbf" + entries.encode())
    assert kth.parse_sequences(path) == QUIRKY_RANGES


@pytest.mark.parametrize("line, what", [
    ("person03_boxing_d1\t\tframes\t1-95, 96-\n", "bad range"),
    ("person03_boxing_d1\t\tframes\t1-95, 185-96\n", "bad range"),
    ("person03_boxing_d1\t\tframes\t0-95\n", "bad range"),
    ("person03_boxing_d1\t\tframes\t1-95,, 96-120\n", "bad range"),
    ("person03_boxing_d1\t\t1-95, 96-120\n", "no 'frames'"),
    ("person03_boxing_d1\t\tframes\n", "no 'frames'"),
    ("person03_dancing_d1\t\tframes\t1-95\n", "not a KTH video name"),
    ("person01_boxing_d1\t\tframes\t1-95\n", "already appeared on line 10"),
    ("Some trailing remark\n", "unexpected text"),
])
def test_malformed_lines_fail_naming_file_line_and_content(tmp_path, line, what):
    path = tmp_path / "00sequences.txt"
    lines = QUIRKY.splitlines(keepends=True)
    lines.insert(13, line)                                      # after person01_jogging_d4
    path.write_text("".join(lines))
    with pytest.raises(DatasetFormatError) as info:
        kth.parse_sequences(path)
    msg = str(info.value)
    assert str(path) in msg and "line 14" in msg and what in msg and line.strip()[:18] in msg


def test_a_single_frame_range_is_kept_and_a_reversed_one_refused(tmp_path):
    # Ranges are inclusive, so 5-5 is one frame and valid; 6-5 is the smallest reversed range.
    path = tmp_path / "00sequences.txt"
    path.write_text("person01_boxing_d1\t\tframes\t5-5, 6-20\n")
    assert kth.parse_sequences(path) == {"person01_boxing_d1": [(5, 5), (6, 20)]}
    path.write_text("person01_boxing_d1\t\tframes\t5-5, 6-20\n"
                    "person01_boxing_d2\t\tframes\t1-4, 6-5\n")
    with pytest.raises(DatasetFormatError, match=r"line 2: bad range 6-5") as info:
        kth.parse_sequences(path)
    assert str(path) in str(info.value)


def test_a_file_without_entries_is_refused(tmp_path):
    path = tmp_path / "00sequences.txt"
    path.write_text("<html>404 Not Found</html>\n")
    with pytest.raises(DatasetFormatError, match="no 'personXX"):
        kth.parse_sequences(path)


def test_range_conventions():
    assert kth.range_frames(1, 95, "official") == (0, 95)
    assert kth.range_frames(1, 95, "drnet") == (0, 94)         # the authors' end - 1
    with pytest.raises(ValueError, match="unknown range convention 'matlab'"):
        kth.range_frames(1, 95, "matlab")


def test_split_schemes():
    assert kth.split_persons("train") == tuple(range(1, 17))
    assert kth.split_persons("test") == tuple(range(17, 26))
    assert kth.split_persons("train", "1-20/21-25") == tuple(range(1, 21))
    assert kth.split_persons("test", "1-20/21-25") == tuple(range(21, 26))
    with pytest.raises(ValueError, match="unknown split 'val'"):
        kth.split_persons("val")


# --- the registry -------------------------------------------------------------------------------------

def test_zips_are_registered_with_the_published_sha1():
    entry = registry.REGISTRY[kth.ZIP_KEYS["walking"]]
    assert entry.sha256 is None and entry.sha1 == "a3e81537271a0ab4576591774baa38c2d97b7e3a"
    assert entry.pinned == ("sha1", entry.sha1)
    assert {registry.REGISTRY[k].filename for k in kth.ZIP_KEYS.values()} == {
        f"{a}.zip" for a in kth.ACTIONS}
    seq = registry.REGISTRY[kth.SEQUENCES_KEY]
    assert seq.sha256 is None and seq.sha1 is None                 # recorded on first download
    with pytest.raises(ValueError, match="40 hex"):
        registry.register("x", "y.zip", None, ("http://h/",), "x", sha1="abc")


def test_a_failed_download_lists_every_file_of_the_dataset_still_missing(tmp_path, monkeypatch):
    """Offline, the first missing KTH file fails; its message names the other six too, with where
    each goes, so that placing them by hand takes one run, not seven."""
    for key in list(registry.REGISTRY):
        if key.startswith("kth/"):
            monkeypatch.setitem(registry.REGISTRY, key, dataclasses.replace(
                registry.REGISTRY[key], mirrors=("http://127.0.0.1:9/",)))    # nothing answers
    boxing = registry.local_path(kth.ZIP_KEYS["boxing"], tmp_path)
    boxing.parent.mkdir(parents=True, exist_ok=True)
    boxing.write_bytes(b"placed by hand")                                     # one is here already
    with pytest.raises(registry.DownloadError) as failed:
        registry.fetch(kth.SEQUENCES_KEY, tmp_path, progress=False, retries=0)
    message = str(failed.value)
    assert "could not download 00sequences.txt" in message
    for action, key in kth.ZIP_KEYS.items():
        line = f"{action}.zip"
        assert (line in message) == (action != "boxing"), action
    assert str(registry.local_path(kth.ZIP_KEYS["walking"], tmp_path)) in message


def test_a_first_sequences_file_its_reader_refuses_is_not_recorded(tmp_path, monkeypatch):
    """No hash of 00sequences.txt is published, so the first copy's is recorded; an empty or
    garbage copy must be refused before that, or it would later block the real file."""
    key = kth.SEQUENCES_KEY
    monkeypatch.setitem(registry.REGISTRY, key, dataclasses.replace(
        registry.REGISTRY[key], mirrors=("http://127.0.0.1:9/",)))    # nothing is downloaded
    path = kth.sequences_path(tmp_path)
    record = registry.recorded_sha256_path(path)
    path.parent.mkdir(parents=True)
    for bad in (b"", b"<html>404 Not Found</html>\n"):
        path.write_bytes(bad)
        with pytest.raises(DatasetFormatError, match=f"(?s){path}.*nothing was recorded"):
            registry.fetch(key, tmp_path, progress=False)
        assert not record.exists()
    path.write_bytes(QUIRKY.encode())                              # the right file, placed by hand
    assert registry.fetch(key, tmp_path, progress=False) == path
    assert record.read_text().split()[0] == registry.sha256_of(path)


def test_fetch_checks_a_sha1(tmp_path, server, monkeypatch):
    served, url = server
    (served / "boxing.zip").write_bytes(b"not really a zip, but bytes with a known SHA1")
    sha1 = hashlib.sha1((served / "boxing.zip").read_bytes()).hexdigest()
    key = kth.ZIP_KEYS["boxing"]
    monkeypatch.setitem(registry.REGISTRY, key,
                        dataclasses.replace(registry.REGISTRY[key], mirrors=(url,), sha1=sha1))
    path = registry.fetch(key, tmp_path / "data", progress=False, retries=0)
    assert path == tmp_path / "data" / "kth" / "zips" / "boxing.zip"
    assert not registry.recorded_sha256_path(path).exists()     # a published hash needs no record
    path.write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="sha1") as info:
        registry.fetch(key, tmp_path / "data", progress=False)
    assert sha1 in str(info.value)
    path.unlink()
    (served / "boxing.zip").write_bytes(b"the mirror now serves other bytes")
    with pytest.raises(ChecksumError, match="sha1 checksum mismatch on download"):
        registry.fetch(key, tmp_path / "data", progress=False, retries=0)
    assert not path.exists()


# --- the stand-in, converted by the real converter --------------------------------------------------

@pytest.fixture(scope="module")
def ci_root(tmp_path_factory):
    """The ci stand-in, written and converted at 64 px by ``prepare`` (as a user would)."""
    root = tmp_path_factory.mktemp("kth")
    data_root = kth.prepare("embedded", root, "ci", S, progress=False, workers=1)
    assert data_root == kth.standin_root(root, "ci")
    return data_root


@pytest.fixture(scope="module")
def sidecar(ci_root):
    return json.loads((kth.kth_dir(ci_root) / kth_standin.SIDECAR).read_text())


def test_standin_is_written_in_the_real_layout(ci_root, sidecar):
    import av

    videos = sidecar["videos"]
    assert len(videos) == 6 * 6 - 1                            # 6 (person, scenario) x 6, one *missing*
    for name, info in videos.items():
        assert kth.avi_path(ci_root, name) == (kth.raw_dir(ci_root) / kth.ACTIONS[info["action"]]
                                               / f"{name}_uncomp.avi")
        assert kth.avi_path(ci_root, name).is_file()
    with av.open(str(kth.avi_path(ci_root, "person01_walking_d1"))) as c:
        st = c.streams.video[0]
        assert (st.codec_context.name, st.width, st.height, st.average_rate) == ("mjpeg", 160, 120, 25)
        assert st.frames == videos["person01_walking_d1"]["frames"]
    assert not kth.avi_path(ci_root, sidecar["missing"]).exists()


def test_standin_sequences_file_has_the_real_quirks(ci_root, sidecar):
    text = kth.sequences_path(ci_root).read_text()
    assert "Training:   person11" in text and "Test:       person22" in text
    assert f"{sidecar['missing']}\t*missing*" in text
    assert "    \t" in text and "\t\tframes\t" in text and "\n\n" in text
    parsed = kth.read_sequences(kth.sequences_path(ci_root))
    assert parsed.missing == (sidecar["missing"],)
    assert {v: [list(r) for r in rs] for v, rs in parsed.ranges.items()} == {
        v: info["written_ranges"] for v, info in sidecar["videos"].items()}
    assert [len(parsed.ranges[v]) for v in sidecar["three_ranges"]] == [3]
    unsorted = parsed.ranges[sidecar["unsorted"]]
    assert unsorted != sorted(unsorted)
    a, b = parsed.ranges[sidecar["overlapping"]][:2]
    assert b[0] <= a[1]                                        # the second starts inside the first


def test_conversion_caches_every_video_squashed_to_s(ci_root, sidecar):
    report = json.loads((kth.processed_dir(ci_root, S) / "conversion_report.json").read_text())
    assert report["videos"] == len(sidecar["videos"]) and report["skipped"] == []
    assert report["missing_in_annotation"] == [sidecar["missing"]]
    name = "person17_boxing_d1"
    with np.load(kth.cache_file(ci_root, name, S)) as z:
        cached = z["frames"]
    assert cached.dtype == np.uint8 and cached.shape == (sidecar["videos"][name]["frames"], S, S)
    full, info = kth.decode_video(kth.avi_path(ci_root, name))
    assert (info["width"], info["height"]) == (160, 120) and full.shape[1:] == (120, 160)
    # squashing = the exact area average of the whole 160x120 frame: upsample 8x (to 960x1280,
    # which 64 divides), then average 15x20 blocks
    mid = len(full) // 2
    exact = np.kron(full[mid].astype(np.float64), np.ones((8, 8))).reshape(S, 15, S, 20).mean((1, 3))
    assert np.abs(exact - cached[mid]).max() <= 0.5 + 1e-9


def test_squash_is_an_exact_area_average():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 120, 160)).astype(np.uint8)
    for size in (64, 128, 40):        # 128 upsamples rows (120 -> 128), 40 divides both sides
        ky, kx = size // np.gcd(120, size), size // np.gcd(160, size)
        up = np.kron(x.astype(np.float64), np.ones((1, ky, kx)))
        exact = up.reshape(3, size, 120 * ky // size, size, 160 * kx // size).mean((2, 4))
        assert np.abs(kth.squash(x, size) - exact).max() <= 0.5 + 1e-9
    flat = np.full((1, 120, 160), 77, np.uint8)
    assert (kth.squash(flat, 64) == 77).all() and (kth.squash(flat, 128) == 77).all()


def _subset_root(ci_root, dest: Path, keep) -> Path:
    """A data root with only the videos ``keep(name)`` of the ci stand-in (AVIs copied with
    their times, and a 00sequences.txt listing just them)."""
    lines = kth.sequences_path(ci_root).read_text().splitlines(keepends=True)
    out = [ln for ln in lines if not ln.startswith("person") or keep(ln.split()[0])]
    kth.sequences_path(dest).parent.mkdir(parents=True, exist_ok=True)
    kth.sequences_path(dest).write_text("".join(out))
    for name in kth.parse_sequences(kth.sequences_path(dest)):
        target = kth.avi_path(dest, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(kth.avi_path(ci_root, name), target)
    return dest


def test_interrupted_conversion_resumes_with_the_rest(ci_root, tmp_path, monkeypatch):
    root = _subset_root(ci_root, tmp_path, lambda v: v.startswith(("person01_", "person02_")))
    total = len(kth.parse_sequences(kth.sequences_path(root)))
    real = kth._convert_one
    calls = []

    def dies_after_five(task):
        if len(calls) == 5:
            raise KeyboardInterrupt                            # the user stops the run
        calls.append(task[0])
        return real(task)

    monkeypatch.setattr(kth, "_convert_one", dies_after_five)
    with pytest.raises(KeyboardInterrupt):
        kth.convert(root, S, progress=False)
    assert len(list(kth.processed_dir(root, S).rglob("*.npz"))) == 5
    assert not list(kth.processed_dir(root, S).rglob("*.tmp"))   # nothing half-written
    second = []
    monkeypatch.setattr(kth, "_convert_one", lambda task: (second.append(task[0]), real(task))[1])
    report = kth.convert(root, S, progress=False)
    assert report["already_done"] == 5 and report["converted"] == total - 5
    assert set(second).isdisjoint(calls) and len(second) == total - 5
    # a third run has nothing to do; a changed AVI is converted again
    second.clear()
    assert kth.convert(root, S, progress=False)["converted"] == 0 and second == []
    avi = kth.avi_path(root, calls[0])
    avi.write_bytes(avi.read_bytes())                          # same bytes, new modification time
    assert kth.convert(root, S, progress=False)["converted"] == 1 and second == [calls[0]]


def test_corrupt_video_fails_by_name_or_is_skipped_and_reported(ci_root, tmp_path):
    root = _subset_root(ci_root, tmp_path, lambda v: v.startswith("person01_") and v.endswith("d1"))
    bad = kth.avi_path(root, "person01_running_d1")
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])                    # a cut-short download/extraction
    with pytest.raises(kth.CorruptVideoError) as info:
        kth.convert(root, S, progress=False)
    assert str(bad) in str(info.value) and "truncated" in str(info.value)
    assert "skip_corrupt=True" in str(info.value)
    assert "extract it again from its zip" in str(info.value)            # real data: a zip to use
    assert f"`drnet data prepare kth --source real --skip-corrupt --root {root}`" in str(info.value)
    with pytest.warns(UserWarning, match="person01_running_d1"):
        report = kth.convert(root, S, progress=True, skip_corrupt=True)
    assert [s["video"] for s in report["skipped"]] == ["person01_running_d1"]
    assert "truncated" in report["skipped"][0]["reason"]
    assert report["converted"] + report["already_done"] == 5
    on_disk = json.loads((kth.processed_dir(root, S) / "conversion_report.json").read_text())
    assert on_disk == report
    clips = kth.load_split(root, "train", S, clip_length=4)
    assert clips.stats["videos_skipped_by_conversion"] == ["person01_running_d1"]
    assert 2 not in clips.action.tolist() and len(clips.videos) == 5
    # not a video at all, and an absent file
    bad.write_bytes(b"RIFF....AVI LIST" + bytes(200))
    with pytest.raises(kth.CorruptVideoError, match="person01_running_d1_uncomp.avi"):
        kth.convert(root, S, progress=False)
    bad.unlink()
    with pytest.raises(FileNotFoundError, match="person01_running_d1_uncomp.avi"):
        kth.convert(root, S, progress=False)
    with pytest.warns(UserWarning, match="person01_running_d1"):    # progress bars or not
        report = kth.convert(root, S, progress=False, skip_corrupt=True)
    assert "absent" in report["skipped"][0]["reason"]


def test_an_image_under_a_videos_name_is_not_taken_for_a_one_frame_video(ci_root, tmp_path):
    """FFmpeg opens a PNG too: decoded as a one-frame "video", its annotated ranges would all be
    lost without a word."""
    from PIL import Image

    root = _subset_root(ci_root, tmp_path, lambda v: v == "person01_walking_d1")
    bad = kth.avi_path(root, "person01_walking_d1")
    Image.new("L", (160, 120)).save(bad, format="PNG")
    with pytest.raises(kth.CorruptVideoError, match=r"person01_walking_d1_uncomp\.avi: not an AVI file"):
        kth.convert(root, S, progress=False)


def test_converted_frames_damaged_inside_name_the_file_and_convert_again(ci_root, tmp_path):
    root = _subset_root(ci_root, tmp_path, lambda v: v.startswith("person01_") and v.endswith("d1"))
    kth.convert(root, S, progress=False)
    cache = kth.cache_file(root, "person01_walking_d1", S)
    _invert_middle(cache, 16)                    # inside the compressed frames: the key still reads
    with pytest.raises(DatasetFormatError, match="the converted frames cannot be read") as err:
        kth.load_split(root, "train", S, clip_length=4)
    assert str(cache) in str(err.value) and "drnet data prepare kth" in str(err.value)
    cache.unlink()                               # the fix the message gives
    assert kth.convert(root, S, progress=False)["converted"] == 1
    assert len(kth.load_split(root, "train", S, clip_length=4).videos) == 6


def _invert_middle(path: Path, n: int) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + n] = bytes(255 - b for b in data[mid:mid + n])
    path.write_bytes(bytes(data))


def test_bytes_damaged_inside_a_frame_are_caught_by_the_recorded_checksum(tmp_path):
    """64 bytes inverted inside an MJPEG frame still decode, to wrong pixels and without an error;
    the CRC32 the stand-in recorded when it wrote the AVI names the file."""
    root = kth.prepare("embedded", tmp_path, "ci", S, progress=False, workers=1)
    avi = kth.avi_path(root, "person02_walking_d1")
    assert kth_video.read_checksums(avi.parent)[avi.name] == kth_video.crc32_of(avi)
    _invert_middle(avi, 64)
    kth.decode_video(avi, S)                                    # decodes as if nothing happened
    with pytest.raises(kth.CorruptVideoError, match=r"person02_walking_d1_uncomp\.avi: damaged since it was "
                                                    r"written: its CRC32 is [0-9a-f]{8}, .*\.crc32\.json records"):
        kth.convert(root, S, progress=False)
    with pytest.warns(UserWarning, match="person02_walking_d1"):     # or left out, if the user allows it
        report = kth.convert(root, S, progress=False, skip_corrupt=True)
    assert [s["video"] for s in report["skipped"]] == ["person02_walking_d1"]


def test_a_skip_allowed_once_holds_for_later_conversions_at_any_size(ci_root, tmp_path, monkeypatch):
    """What `drnet data prepare kth --skip-corrupt` left out stays out for training, which
    converts without skip_corrupt (and the smoke profile at another frame size): a warning names
    the video and it is not decoded again while its AVI is unchanged."""
    root = _subset_root(ci_root, tmp_path, lambda v: v.startswith("person01_") and v.endswith("d1"))
    bad = kth.avi_path(root, "person01_boxing_d1")
    bad.write_bytes(b"\x00garbage" * 500)
    with pytest.warns(UserWarning, match="person01_boxing_d1"):
        kth.convert(root, S, progress=False, skip_corrupt=True)
    real, decoded = kth._convert_one, []
    monkeypatch.setattr(kth, "_convert_one", lambda task: (decoded.append(task[0]), real(task))[1])
    for size in (S, 32):
        with pytest.warns(UserWarning, match=r"(?s)person01_boxing_d1.*earlier run with --skip-corrupt"):
            report = kth.convert(root, size, progress=False)
        assert [s["video"] for s in report["skipped"]] == report["skipped_before"] == ["person01_boxing_d1"]
        clips = kth.load_split(root, "train", size, clip_length=4)
        assert clips.stats["videos_skipped_by_conversion"] == ["person01_boxing_d1"]
    assert "person01_boxing_d1" not in decoded and len(decoded) == 5     # the good ones, at 32 px
    # a changed AVI is tried again: still bad, so without skip_corrupt it fails as before
    bad.write_bytes(b"\x00other garbage" * 500)
    with pytest.raises(kth.CorruptVideoError, match="person01_boxing_d1.*--skip-corrupt"):
        kth.convert(root, S, progress=False)
    # a repaired AVI converts and leaves the record
    shutil.copy2(kth.avi_path(ci_root, "person01_boxing_d1"), bad)
    report = kth.convert(root, S, progress=False)
    assert report["skipped"] == [] and report["converted"] == 1
    assert json.loads((kth.kth_dir(root) / kth.SKIPPED_NAME).read_text())["videos"] == {}


def test_standin_skip_carries_from_prepare_into_loading_and_its_advice_is_to_write_it_again(
        ci_root, tmp_path):
    """The new user's path: `drnet data prepare kth --size ci --skip-corrupt` with a bad stand-in
    AVI, then training (load_kth at the smoke profile's 32 px, no skip_corrupt)."""
    shutil.copytree(kth.kth_dir(ci_root), kth.kth_dir(kth.standin_root(tmp_path, "ci")))
    bad = kth.avi_path(kth.standin_root(tmp_path, "ci"), "person01_boxing_d1")
    bad.write_bytes(b"\x00garbage" * 500)
    with pytest.raises(kth.CorruptVideoError) as info:
        kth.prepare("embedded", tmp_path, "ci", S, progress=False, workers=1)
    write_again = f"`drnet data prepare kth --size ci --root {tmp_path}` to write it again"
    msg = str(info.value)
    assert write_again in msg and "zip" not in msg
    assert f"`drnet data prepare kth --size ci --skip-corrupt --root {tmp_path}`" in msg
    with pytest.warns(UserWarning, match="person01_boxing_d1"):
        kth.prepare("embedded", tmp_path, "ci", S, progress=False, skip_corrupt=True, workers=1)
    with pytest.warns(UserWarning, match="person01_boxing_d1"):
        clips = kth.load_kth("embedded", "train", tmp_path, "ci", 32, clip_length=4, progress=False,
                             workers=1)
    assert "person01_boxing_d1" not in clips.videos and len(clips.videos) > 0
    # an empty stand-in annotation: the same advice, not "fetch it again"
    seqs = kth.sequences_path(kth.standin_root(tmp_path, "ci"))
    text = seqs.read_text()
    seqs.write_text("")
    with pytest.raises(DatasetFormatError) as info:
        kth.read_sequences(seqs)
    assert f"delete {seqs} and run {write_again}" in str(info.value) and "fetch" not in str(info.value)
    seqs.write_text(text)
    # following the advice: the deleted AVI is written again and converts
    bad.unlink()
    kth.prepare("embedded", tmp_path, "ci", S, progress=False, workers=1)
    report = json.loads((kth.processed_dir(kth.standin_root(tmp_path, "ci"), S)
                         / "conversion_report.json").read_text())
    assert bad.is_file() and report["skipped"] == []


def test_ranges_past_the_video_end_are_cut_and_counted(ci_root, sidecar, tmp_path):
    root = _subset_root(ci_root, tmp_path, lambda v: v == "person01_boxing_d4")
    n = sidecar["videos"]["person01_boxing_d4"]["frames"]
    (a, _), (c, d) = sidecar["videos"]["person01_boxing_d4"]["written_ranges"][:2]
    path = kth.sequences_path(root)
    text = path.read_text()
    entry = next(ln for ln in text.splitlines() if ln.startswith("person01_boxing_d4"))
    path.write_text(text.replace(entry, f"person01_boxing_d4\t\tframes\t{a}-{n + 30}, {c}-{d}, "
                                        f"{n + 1}-{n + 40}"))
    report = kth.convert(root, S, progress=False)
    assert report["ranges_past_end"] == [{"video": "person01_boxing_d4", "range": [a, n + 30], "frames": n},
                                         {"video": "person01_boxing_d4", "range": [n + 1, n + 40], "frames": n}]
    clips = kth.load_split(root, "train", S, ranges="official")
    assert clips.stats["ranges_clipped_at_video_end"] == 2 and clips.stats["ranges_dropped_empty"] == 1
    assert clips.lengths.tolist() == [n - a + 1, d - c + 1] and clips.range_index.tolist() == [0, 1]


def test_prepare_real_runs_offline_against_a_local_mirror(ci_root, tmp_path, server, monkeypatch):
    """The 'real' path end to end: zips (SHA1-checked) and 00sequences.txt from a mirror,
    extraction into raw/<action>/, conversion, loading."""
    served, url = server
    src = _subset_root(ci_root, tmp_path / "src", lambda v: v.startswith("person01_") and v.endswith("d1"))
    shutil.copy(kth.sequences_path(src), served / "00sequences.txt")
    for action in kth.ACTIONS:
        with zipfile.ZipFile(served / f"{action}.zip", "w") as z:   # KTH's zips unpack flat
            for avi in sorted((kth.raw_dir(src) / action).glob("*.avi")):
                z.write(avi, avi.name)
        key = kth.ZIP_KEYS[action]
        sha1 = hashlib.sha1((served / f"{action}.zip").read_bytes()).hexdigest()
        monkeypatch.setitem(registry.REGISTRY, key, dataclasses.replace(
            registry.REGISTRY[key], mirrors=(url,), sha1=sha1))
    monkeypatch.setitem(registry.REGISTRY, kth.SEQUENCES_KEY, dataclasses.replace(
        registry.REGISTRY[kth.SEQUENCES_KEY], mirrors=(url,)))
    root = tmp_path / "data"
    clips = kth.load_kth("real", "train", root, image_size=S, clip_length=4, progress=False,
                         workers=1)
    assert sorted(clips.videos) == sorted(kth.parse_sequences(kth.sequences_path(src)))
    assert (kth.raw_dir(root) / "boxing" / "person01_boxing_d1_uncomp.avi").is_file()
    assert registry.recorded_sha256_path(kth.sequences_path(root)).is_file()
    # a second prepare extracts and converts nothing
    marker = kth.raw_dir(root) / "boxing" / ".extracted"
    before = marker.stat().st_mtime_ns
    assert kth.prepare("real", root, image_size=S, progress=False, workers=1) == root
    assert marker.stat().st_mtime_ns == before
    # an AVI deleted (as a corrupt video's error advises) is extracted again, and only it
    gone = kth.raw_dir(root) / "boxing" / "person01_boxing_d1_uncomp.avi"
    others = {p: p.stat().st_mtime_ns for p in kth.raw_dir(root).rglob("*.avi") if p != gone}
    gone.unlink()
    assert kth.prepare("real", root, image_size=S, progress=False, workers=1) == root
    assert gone.read_bytes() == kth.avi_path(src, "person01_boxing_d1").read_bytes()
    assert {p: p.stat().st_mtime_ns for p in others} == others
    # the zip's CRC32s are recorded beside the AVIs: bytes damaged after extraction are named
    _invert_middle(gone, 64)
    with pytest.raises(kth.CorruptVideoError, match=r"person01_boxing_d1_uncomp\.avi: damaged since it "
                                                    r"was written.*extract it again from its zip"):
        kth.convert(root, S, progress=False)
    # a damaged zip is named
    bad = tmp_path / "bad.zip"
    bad.write_bytes((served / "boxing.zip").read_bytes()[:300])
    with pytest.raises(DatasetFormatError, match="bad.zip"):
        kth.extract_zip(bad, tmp_path / "out", progress=False)


# --- splits, clips, factors ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def train(ci_root):
    return kth.load_split(ci_root, "train", S, clip_length=8)


def test_splits_are_by_person(ci_root, train):
    test = kth.load_split(ci_root, "test", S, clip_length=8)
    assert set(train.person.tolist()) == {1, 2} and set(test.person.tolist()) == {17, 18}
    assert all(int(v[6:8]) <= 16 for v in train.videos) and all(int(v[6:8]) >= 17 for v in test.videos)
    wide = kth.load_split(ci_root, "train", S, scheme="1-20/21-25")
    assert set(wide.person.tolist()) == {1, 2, 17, 18}
    with pytest.raises(ValueError, match="no KTH video"):
        kth.load_split(ci_root, "test", S, scheme="1-20/21-25")   # the ci persons are all <= 20


def test_sequences_are_the_annotated_ranges(ci_root, sidecar, train):
    assert len(train) == sum(len(sidecar["videos"][v]["written_ranges"]) for v in train.videos)
    official = kth.load_split(ci_root, "train", S, ranges="official")
    assert int(official.lengths.sum() - train.lengths.sum()) == len(train)   # one frame a range
    for q in range(len(train)):
        video = train.videos[int(train.video[q])]
        a, b = sidecar["videos"][video]["written_ranges"][int(train.range_index[q])]
        assert int(train.lengths[q]) == b - a                 # 1-indexed inclusive, minus the last
        with np.load(kth.cache_file(ci_root, video, S)) as z:
            expected = z["frames"][a - 1:b - 1]
        assert torch.equal(train.frames[train.offsets[q]:train.offsets[q] + train.lengths[q], 0],
                           torch.from_numpy(expected))


def test_factors_match_the_generating_ones(train, sidecar):
    for q in range(len(train)):
        info = sidecar["videos"][train.videos[int(train.video[q])]]
        assert (int(train.action[q]), int(train.person[q]), int(train.scenario[q])) == (
            info["action"], info["person"], info["scenario"])
    assert kth.video_factors("person07_handclapping_d3") == (5, 7, 3)
    assert kth.ACTIONS == ("walking", "jogging", "running", "boxing", "handwaving", "handclapping")


def test_clips_stay_inside_one_range(train):
    g = torch.Generator().manual_seed(0)
    length = 12
    factors = train.sample_factors(4000, g, length)
    lengths = train.lengths[factors.sequence]
    assert (factors.start >= 0).all() and (factors.start + length <= lengths).all()
    assert (lengths >= length).all()                         # short ranges are never drawn
    short = int((train.lengths < length).sum())
    assert train.num_too_short(length) == short > 0
    assert train.sampling_weights(length)[train.lengths < length].sum() == 0
    # every long-enough range, and both ends of the start interval, do occur
    assert set(factors.sequence.tolist()) == set(torch.nonzero(train.lengths >= length).flatten().tolist())
    assert (factors.start == 0).any() and (factors.start + length == lengths).any()
    # the authors' weighting: every action equally often
    w = train.sampling_weights(length)
    per_action = torch.zeros(6, dtype=torch.float64).index_add_(0, train.action, w)
    assert torch.allclose(per_action, torch.full((6,), 1 / 6, dtype=torch.float64))
    clip = train.render(factors.subset(slice(0, 3)), torch.arange(length))
    assert clip.shape == (3, length, 1, S, S) and clip.dtype == torch.float32
    q, s0 = int(factors.sequence[1]), int(factors.start[1])
    assert torch.equal(clip[1], train.sequence_frames(q)[s0:s0 + length])
    with pytest.raises(IndexError):                            # past the range's end
        train.render(factors.subset(slice(0, 3)), torch.arange(int(lengths.max()) + 1))
    with pytest.raises(ValueError, match="no KTH sequence has"):
        train.sample_factors(2, g, int(train.lengths.max()) + 1)
    frames, f2 = train.sample_clips(5, torch.Generator().manual_seed(3))
    assert frames.shape == (5, 8, 1, S, S) and len(f2) == 5    # clip_length by default


def test_sampling_is_deterministic(train):
    a = train.sample_factors(64, torch.Generator().manual_seed(7), 8)
    b = train.sample_factors(64, torch.Generator().manual_seed(7), 8)
    c = train.sample_factors(64, torch.Generator().manual_seed(8), 8)
    assert torch.equal(a.sequence, b.sequence) and torch.equal(a.start, b.start)
    assert not (torch.equal(a.sequence, c.sequence) and torch.equal(a.start, c.start))


def _figure_mask(clips, q, person, scenario):
    """Pixels of the range's frames that differ from the place's empty background."""
    bg, _ = kth_standin._background(person, scenario, 0)
    bg = kth.squash(np.round(bg * 255).astype(np.uint8)[None], S)[0].astype(np.float32) / 255
    return np.abs(clips.sequence_frames(q)[:, 0].numpy() - bg) > 0.15


def test_images_are_figures_doing_the_action(train):
    frames = train.sequence_frames(0)
    assert 0 <= frames.min() and frames.max() <= 1
    x = train.frames[:, 0].float()
    # natural-image smoothness: neighbouring pixels agree (noise would not)
    corr = np.corrcoef(x[:, :, 1:].flatten().numpy(), x[:, :, :-1].flatten().numpy())[0, 1]
    assert corr > 0.8
    speeds = {}
    for q in range(len(train)):
        a, p, s = int(train.action[q]), int(train.person[q]), int(train.scenario[q])
        mask = _figure_mask(train, q, p, s)
        area = mask.mean(axis=(1, 2))
        if a >= 3:                          # in place: one person-sized, upright blob in every frame
            assert (area > 0.005).all() and (area < 0.15).all(), (q, area.min(), area.max())
            ys, xs = np.nonzero(mask.any(0))
            assert np.ptp(ys) > np.ptp(xs) * 0.9 or a == 4      # taller than wide (arms out waving)
        elif s == 1:                        # crossing: the blob's centre moves sideways
            cols = [np.nonzero(m.any(0))[0] for m in mask]
            centre = np.array([c.mean() for c in cols if len(c) > 2])
            speeds.setdefault(a, []).append(np.median(np.abs(np.diff(centre))))
    walking, jogging, running = (np.mean(speeds[a]) for a in range(3))
    assert 0.5 < walking < jogging < running                   # px per frame at 64 px


def test_standin_rendering_is_deterministic_and_idempotent(ci_root, sidecar):
    a, ranges, _ = kth_standin.render_video(2, 4, 1, time_scale=3.2)
    b, ranges2, _ = kth_standin.render_video(2, 4, 1, time_scale=3.2)
    assert np.array_equal(a, b) and ranges == ranges2
    assert [list(r) for r in ranges] == sidecar["videos"]["person02_handwaving_d1"]["ranges"]
    other, _, _ = kth_standin.render_video(2, 4, 1, time_scale=3.2, seed=1)
    assert not np.array_equal(a, other)
    assert a.shape[1:] == (120, 160) and len(a) == sidecar["videos"]["person02_handwaving_d1"]["frames"]
    stamp = kth.avi_path(ci_root, "person02_handwaving_d1").stat().st_mtime_ns
    assert kth_standin.write_standin(ci_root, "ci", progress=False) == ci_root
    assert kth.avi_path(ci_root, "person02_handwaving_d1").stat().st_mtime_ns == stamp
    # persons differ in look, scenarios in background
    p1, p2 = kth_standin.person_params(1), kth_standin.person_params(2)
    assert p1 != p2 and p1 == kth_standin.person_params(1)
