"""tools/time_authors_drnet.py runs a drnet-py checkout's own training step on the CPU.

The authors' code is not in this repository, so the test builds a small checkout with the same
shape: a ``train_drnet.py`` script that parses its options, builds on ``.cuda()``, fills
``torch.cuda.FloatTensor`` buffers, loads Moving MNIST through ``utils`` (whose loaders the tool
replaces) from torchvision's MNIST (which the tool stands in for), and only trains for ``--niter``
epochs; the tool must time its loop body beside ours and print one JSON line on stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from drnet_lib.results import REPO_ROOT, host_cpu

SCRIPT = '''
import argparse, random, torch, torch.nn as nn, utils
from torch.utils.data import DataLoader
p = argparse.ArgumentParser()
for name, default in [("--niter", 200), ("--data_threads", 5), ("--log_dir", "logs"), ("--batch_size", 4),
                      ("--image_width", 64), ("--channels", 3), ("--content_model", "dcgan_unet"), ("--pose_model", "dcgan"),
                      ("--content_dim", 128), ("--pose_dim", 10), ("--max_step", 6), ("--data_root", "")]:
    p.add_argument(name, default=default, type=type(default))
opt = p.parse_args()
print(opt)                                            # the tool keeps this off stdout
net = nn.Conv2d(3, 2, 4).cuda()
net.apply(utils.init_weights)
optimizer = torch.optim.Adam(net.parameters())
train_data, test_data = utils.load_dataset(opt)
loader = DataLoader(train_data, num_workers=opt.data_threads, batch_size=opt.batch_size, drop_last=True)
def get_training_batch():
    while True:
        for sequence in loader:
            yield utils.normalize_data(opt, torch.cuda.FloatTensor, sequence)
training_batch_generator = get_training_batch()
calls = []
def train_scene_discriminator(x):
    calls.append("C")
    assert len(x) == opt.max_step and x[0].shape == (opt.batch_size, 3, 64, 64)
def train(x):
    target = torch.cuda.FloatTensor(opt.batch_size, 1).fill_(0.5)
    loss = net(x[random.randint(1, opt.max_step - 1)]).mean() + target.mean()
    optimizer.zero_grad(); loss.backward(); optimizer.step()
for epoch in range(opt.niter):
    raise AssertionError("the tool must not train epochs")
'''

MOVING_MNIST = '''
import numpy as np
from torchvision import datasets, transforms
class MovingMNIST:
    def __init__(self, train, data_root, seq_len=20, num_digits=2, image_size=64):
        self.data = datasets.MNIST(data_root, train=train, download=True,
                                   transform=transforms.Compose([transforms.Scale(32), transforms.ToTensor()]))
        self.seq_len, self.image_size = seq_len, image_size
    def __len__(self):
        return len(self.data)
    def __getitem__(self, index):
        digit, _ = self.data[index]
        x = np.zeros((self.seq_len, self.image_size, self.image_size, 3), dtype=np.float32)
        x[:, 10:42, 10:42, 0] = digit.numpy()
        return x
'''


def test_tool_times_a_checkouts_own_iteration_beside_ours(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)   # files copied inside another repository:
    checkout = tmp_path / "drnet-py"                                   # that repository's commit is not theirs
    (checkout / "data").mkdir(parents=True)
    (checkout / "train_drnet.py").write_text(textwrap.dedent(SCRIPT))
    (checkout / "utils.py").write_text("def load_dataset(opt):\n    raise AssertionError('replaced by the tool')\n")
    (checkout / "data" / "moving_mnist.py").write_text(textwrap.dedent(MOVING_MNIST))
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "time_authors_drnet.py"), str(checkout),
                           "--rounds", "1", "--block", "1", "--data-threads", "0", "--log-dir", str(tmp_path / "logs"),
                           "--set", "train.batch_size=4", "model.base_width=8"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout                          # their printed options went to stderr
    row = json.loads(lines[0])
    assert row["authors_step_s"] > 0 and row["ours_step_s"] > 0
    assert 0 < row["authors_batch_wait_s"] < row["authors_step_s"]
    assert row["ours_over_authors"] == pytest.approx(row["ours_step_s"] / row["authors_step_s"], rel=0.01)
    assert row["ours_overrides"] == {"train.batch_size": 4, "model.base_width": 8}
    assert row["authors_config"]["max_step"] == 6 and row["authors_data_threads"] == 0
    assert row["authors_commit"] is None and row["device"] == "cpu" and row["host_cpu"] == host_cpu()
    # their iteration's FLOPs are counted on their code: the fake train() runs one Conv2d(3, 2, 4)
    # on (4, 3, 64, 64) frames, forward plus the weight gradient (the frames need none)
    conv = 2 * 4 * (2 * 61 * 61) * (3 * 4 * 4)
    assert row["authors_flops_per_step"] == 2 * conv
    assert row["flops_per_step"] > row["authors_flops_per_step"] > 0
    peak = row["matmul_peak_tflops"] * 1e12
    assert row["goal_fraction_of_matmul_peak"] == pytest.approx(
        row["authors_flops_per_step"] / (0.7 * row["authors_step_s"]) / peak, rel=0.01)


def test_tool_says_what_to_pass_when_the_folder_is_not_a_checkout(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "time_authors_drnet.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "edenton/drnet-py" in proc.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_tool_refuses_cuda_when_there_is_no_gpu(tmp_path):
    (tmp_path / "train_drnet.py").write_text("raise AssertionError('must not run')\n")
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "time_authors_drnet.py"), str(tmp_path),
                           "--device", "cuda"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
