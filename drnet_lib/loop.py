"""The resumable training loop shared by DrNet and the pose LSTM.

A subclass provides ``step()`` (one iteration, returning its logged values as one device tensor,
so the loop never waits on the host between steps) and the pieces of its state; this class runs
the loop with a progress bar, averages the logged values over ``log_every`` iterations, writes an
atomic checkpoint every ``checkpoint_every`` iterations, and resumes from one.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint


# How torch runs Adam's update: "for-loop" tensor by tensor (the authors' era, torch's CPU default),
# "foreach" in a few batched ops over all tensors (torch's GPU default; bit-identical to the loop on
# the CPU, tests/test_reference_step.py), "fused" in one kernel. Fused rounds differently, and on
# parameters whose gradient is only rounding noise (a convolution's bias before BatchNorm) Adam's
# normalised step amplifies that into visibly different weights, so it is an option, not the default.
ADAM_IMPLEMENTATIONS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}


def make_adam(params, lr: float, beta1: float, implementation: str = "foreach") -> torch.optim.Adam:
    """``Adam(params, lr, betas=(beta1, 0.999))`` executed the named way (``train.adam``)."""
    if implementation not in ADAM_IMPLEMENTATIONS:
        raise ValueError(f"train.adam must be one of {sorted(ADAM_IMPLEMENTATIONS)}, got {implementation!r}")
    return torch.optim.Adam(params, lr=lr, betas=(beta1, 0.999), **ADAM_IMPLEMENTATIONS[implementation])


class ResumableLoop:
    """Subclasses set: ``cfg``, ``checkpoint_sections`` (the configuration sections a checkpoint
    must match), ``iterations, log_every, checkpoint_every, log_names, generator, modules (dict of
    nn.Module), optimizers (dict)`` and implement ``step()``."""

    checkpoint_sections: tuple[str, ...] = ()
    iteration: int = 0
    wall_s: float = 0.0          # training time of this run, summed over every resumed session
    resumed_wall_s: float = 0.0  # the part of wall_s spent before this process resumed
    _window, _n_window = None, 0  # running sum of the current log window (saved in checkpoints)
    name = "train"
    rank = 0                     # under torchrun only rank 0 writes checkpoints and shows progress

    @property
    def fingerprint(self) -> str:
        """Written into every checkpoint: the hash of the ``checkpoint_sections`` settings."""
        return self.cfg.fingerprint(*self.checkpoint_sections)

    @property
    def accepted_fingerprints(self) -> frozenset[str]:
        """The fingerprints a checkpoint this run resumes from may carry (config.accepted_fingerprints)."""
        return self.cfg.accepted_fingerprints(*self.checkpoint_sections)

    def step(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def fit(self, checkpoint_path: str | Path | None = None, progress: bool = True) -> list[dict]:
        """Run until ``self.iterations``; a finished run returns at once."""
        window, n_window = self._window, self._n_window  # a log window cut by a resume continues
        bar = tqdm(total=self.iterations, initial=self.iteration, desc=self.name, disable=not progress or self.rank != 0,
                   dynamic_ncols=True)
        start = time.perf_counter()
        try:
            while self.iteration < self.iterations:
                values = self.step()
                self.iteration += 1
                window = values if window is None else window + values
                n_window += 1
                bar.update(1)
                last = self.iteration == self.iterations
                if self.iteration % self.log_every == 0 or last:
                    row = {"iteration": self.iteration, **dict(zip(self.log_names, (window / n_window).tolist()))}
                    self.history.append(row)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in list(row.items())[1:3]})
                    window, n_window = None, 0
                if checkpoint_path and self.rank == 0 and (self.iteration % self.checkpoint_every == 0 or last):
                    self._window, self._n_window = window, n_window
                    now = time.perf_counter()
                    self.wall_s, start = self.wall_s + now - start, now
                    self.save(checkpoint_path)
        finally:
            bar.close()
            self.wall_s += time.perf_counter() - start
        return self.history

    def state_dict(self) -> dict:
        return {
            "fingerprint": self.fingerprint,
            "iteration": self.iteration,
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "generator": self.generator.get_state(),
            "history": self.history,
            "wall_s": self.wall_s,
            "log_window": (self._window, self._n_window),
            **self.extra_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.generator.set_state(state["generator"])
        self.iteration = state["iteration"]
        self.history = list(state["history"])
        self.wall_s = state["wall_s"]
        self._window, self._n_window = state["log_window"]
        self.load_extra_state(state)

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(self.state_dict(), path)

    def resume(self, path: str | Path) -> bool:
        """Load ``path`` if it exists (refusing another configuration's); True if it did."""
        path = Path(path)
        if not path.exists():
            return False
        self.load_state_dict(load_checkpoint(path, self.accepted_fingerprints))
        self.resumed_wall_s = self.wall_s
        return True

    def run(self, checkpoint_path=None, resume: bool = True, progress: bool = True):
        """Resume (or start over, deleting an old checkpoint) and train to the end."""
        if checkpoint_path and resume:
            self.resume(checkpoint_path)
        elif checkpoint_path:
            Path(checkpoint_path).unlink(missing_ok=True)
        self.fit(checkpoint_path, progress=progress)
        return self
