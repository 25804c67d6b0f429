"""Shared fixtures for the unit tests: the smoke configuration, small Moving MNIST banks, and a
DrNet trained for the smoke profile's 30 iterations.

Everything runs on the CPU with one thread: the machine is shared, and with one thread the CPU
kernels are deterministic, which the resume-exactness tests rely on.
"""

from __future__ import annotations

import copy
import functools
import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

from drnet_lib.config import get_config  # noqa: E402
from drnet_lib.train import DrNetTrainer, make_test_bank, make_train_bank  # noqa: E402


def pytest_configure(config):
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smoke_cfg():
    """The smoke profile (32 px, base width 8, 30 iterations, checkpoint every 10)."""
    return get_config("mnist", "smoke")


@pytest.fixture(scope="session")
def train_bank(smoke_cfg):
    """Moving MNIST over the embedded training digits, smoke geometry (32 px frames, 16 px digits)."""
    return make_train_bank(smoke_cfg, "cpu")


@pytest.fixture(scope="session")
def test_bank(smoke_cfg):
    return make_test_bank(smoke_cfg, "cpu")


@pytest.fixture(scope="session")
def _trained_smoke(smoke_cfg, train_bank):
    trainer = DrNetTrainer(smoke_cfg, "cpu", bank=train_bank)
    trainer.fit(progress=False)
    return trainer


@pytest.fixture
def trained_model(_trained_smoke):
    """A private copy of a DrNet trained on the smoke profile (tests may mutate it freely)."""
    return copy.deepcopy(_trained_smoke.model)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(folder, base URL): files put in the folder are served over HTTP on 127.0.0.1."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def assert_same_state(a, b, path="state"):
    """Recursively assert two (nested) states are identical: tensors bit for bit, the rest by ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), f"{path}: tensor vs {type(b).__name__}"
        assert a.shape == b.shape and a.dtype == b.dtype, f"{path}: {a.shape}/{a.dtype} vs {b.shape}/{b.dtype}"
        assert torch.equal(a, b), f"{path}: tensors differ (max |diff| {(a.double() - b.double()).abs().max()})"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for k in a:
            assert_same_state(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.fixture(scope="session")
def same_state():
    return assert_same_state


def untrained_run(experiment: str, data_root: Path):
    """The smoke configuration of ``experiment`` reading ``data_root``, and a stand-in for its
    finished DrNet trainer, holding an untrained model: what ``record.recorded_metrics`` reads
    (model, bank, device, history, iteration, wall_s). For tests of the measuring's wiring, not
    of its scores."""
    import types

    cfg = get_config(experiment, "smoke", overrides={"data.root": str(data_root)})
    bank = make_train_bank(cfg, "cpu")
    trainer = types.SimpleNamespace(model=DrNetTrainer(cfg, "cpu", bank=bank).model, bank=bank,
                                    device=torch.device("cpu"), history=[{"loss": 1.0}], iteration=1, wall_s=1.0)
    return cfg, trainer


@pytest.fixture(scope="session")
def html(tmp_path_factory) -> Path:
    """The book built as a reader builds it (``jupyter-book build --all -W``) into a temporary
    folder: the path of its ``_build/html``. Built once per session (book and browser tests)."""
    from drnet_lib.results import REPO_ROOT, load_runs

    for experiment in ("mnist", "norb", "suncg", "kth"):
        if not load_runs(REPO_ROOT / "results", "cpu", experiment):
            pytest.fail(f"results/cpu/{experiment}_seed*.json are missing: the book needs committed cpu results")
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jupyter_book), "build", "--all", "-W", "--keep-going", "--path-output", str(out), "."],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    shutil.rmtree(out / "_build" / ".jupyter_cache", ignore_errors=True)
    return out / "_build" / "html"


@pytest.fixture
def ctrl_c_raises():
    """Ctrl-C (SIGINT) raises KeyboardInterrupt in this test, as in an interactive terminal: a test
    run started in the background (`&`, CI) inherits SIGINT ignored, which the code respects."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


# -- figures as the book shows them ---------------------------------------------------------------
BOOK_WIDTH_IN = 7.6     # the book's column shows about 765 px of a 100-dpi figure unshrunk
MIN_FONT_PT = 8         # the smallest text a figure may draw


def shown_texts(fig) -> list:
    """Every visible, non-empty text of ``fig``."""
    import matplotlib.text

    return [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]


def small_texts(fig) -> list[tuple[str, float]]:
    """(text, size) of every shown text drawn smaller than MIN_FONT_PT."""
    fig.canvas.draw()   # creates the tick labels
    return [(t.get_text(), t.get_fontsize()) for t in shown_texts(fig) if t.get_fontsize() < MIN_FONT_PT]
