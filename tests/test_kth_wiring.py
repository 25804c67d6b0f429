"""KTH reaches the DrNet trainer and the pose LSTM through the same clip interface."""

from __future__ import annotations

import torch

from drnet_lib.config import get_config
from drnet_lib.data.kth import ACTIONS
from drnet_lib.predict import LSTMTrainer
from drnet_lib.train import DrNetTrainer, make_test_bank, make_train_bank


def test_kth_smoke_trains_drnet_and_lstm_steps(tmp_path):
    cfg = get_config("kth", "smoke", data_root=str(tmp_path))
    train, test = make_train_bank(cfg, "cpu"), make_test_bank(cfg, "cpu")
    assert set(train.person.tolist()) <= set(range(1, 17)) and set(test.person.tolist()) <= set(range(17, 26))
    assert set(train.action.tolist()) == set(range(len(ACTIONS)))
    trainer = DrNetTrainer(cfg, "cpu", bank=train)
    logged = trainer.step()
    assert logged.shape == (5,) and torch.isfinite(logged).all()
    lstm = LSTMTrainer(cfg, trainer.model, train)
    assert torch.isfinite(lstm.step()).all()
    frames, _ = test.sample_clips(2, torch.Generator().manual_seed(0), cfg.lstm.n_past + cfg.lstm.n_future)
    assert frames.shape == (2, cfg.lstm.n_past + cfg.lstm.n_future, 1, 32, 32)
