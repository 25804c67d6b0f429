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

from .checkpoint import START_OVER, CheckpointError, load_checkpoint, save_checkpoint
from .config import CADENCE_SETTINGS, NOT_COMPARED, ExperimentConfig, config_from_dict, differences
from .results import current_commit, note_model
from .stopping import stop_requests


# How torch runs Adam's update: "for-loop" tensor by tensor (the authors' era, torch's CPU default),
# "foreach" in a few batched ops over all tensors (torch's GPU default; bit-identical to the loop on
# the CPU, tests/test_reference_step.py), "fused" in one kernel. Fused rounds differently, and on
# parameters whose gradient is only rounding noise (a convolution's bias before BatchNorm) Adam's
# normalised step amplifies that into visibly different weights, so it is an option, not the default.
ADAM_IMPLEMENTATIONS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}


def make_adam(params, lr: float, beta1: float, implementation: str = "foreach") -> torch.optim.Adam:
    """``Adam(params, lr, betas=(beta1, 0.999))`` executed the named way (``train.adam``)."""
    if not 0 <= beta1 < 1:   # torch's own message names neither the setting nor its range
        raise ValueError(f"Adam's beta1 (train.beta1 or lstm.beta1) must be in [0, 1), got {beta1!r}")
    if implementation not in ADAM_IMPLEMENTATIONS:
        raise ValueError(f"train.adam must be one of {sorted(ADAM_IMPLEMENTATIONS)}, got {implementation!r}")
    return torch.optim.Adam(params, lr=lr, betas=(beta1, 0.999), **ADAM_IMPLEMENTATIONS[implementation])


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM arrived while a loop trained: it finished the iteration it was in,
    saved a checkpoint there (where it had a checkpoint path) and stopped. A KeyboardInterrupt, so
    Jupyter and the command line treat it as the interrupt the user asked for."""


class ResumableLoop:
    """Subclasses set: ``cfg``, ``checkpoint_sections`` (the configuration sections a checkpoint
    must match), ``length_setting`` (the dotted setting that holds ``iterations``), ``iterations,
    log_every, checkpoint_every, log_names, generator, modules (dict of nn.Module), optimizers
    (dict)`` and implement ``step()``.

    A checkpoint resumes under settings that change when the run saves and logs, where its files
    are, or how the same sums are laid out (config.NOT_COMPARED, config.CADENCE_SETTINGS), and
    under a larger ``iterations`` where the steps do not depend on the run's length: the first n
    iterations of a longer run are then exactly those of an n-iteration run, so a finished run
    asked for more continues. Any other difference is refused, naming the settings.
    """

    checkpoint_sections: tuple[str, ...] = ()
    length_setting: str = ""
    refusal_fix = "use another checkpoint folder, or delete it to start over"   # after "another configuration"
    iteration: int = 0
    wall_s: float = 0.0          # training time of this run, summed over every resumed session
    resumed_wall_s: float = 0.0  # the part of wall_s spent before this process resumed
    _window, _n_window = None, 0  # running sum of the current log window (saved in checkpoints)
    name = "train"
    rank = 0                     # under torchrun only rank 0 writes checkpoints and shows progress
    world = 1                    # processes training together (torchrun); signals stop only a lone one
    resumed_world: int | None = None  # processes that trained the checkpoint resumed (None: unrecorded)
    resumed_commit: str | None = None  # the commit whose code last trained it (None: unrecorded)
    resumed_iteration: int = 0   # where this process took the run up (0: it started it)

    @classmethod
    def length_shapes_steps(cls, cfg: ExperimentConfig) -> bool:
        """Whether ``cfg``'s run length changes what the steps compute (e.g. a step size that
        falls to zero at the last iteration); such a run cannot be extended."""
        return False

    @classmethod
    def length_of(cls, cfg: ExperimentConfig) -> int:
        """``cfg``'s value of ``length_setting``: the iterations a run of it trains for."""
        section, name = cls.length_setting.split(".")
        return getattr(getattr(cfg, section), name)

    @classmethod
    def settings_left_out(cls, cfg: ExperimentConfig) -> frozenset[str]:
        """The settings of ``checkpoint_sections`` a checkpoint may differ in and still resume."""
        extendable = {cls.length_setting} if cls.length_setting and not cls.length_shapes_steps(cfg) else set()
        return NOT_COMPARED | CADENCE_SETTINGS | frozenset(extendable)

    @classmethod
    def checkpoint_fingerprint(cls, cfg: ExperimentConfig) -> str:
        """Written into every checkpoint: the hash of the ``checkpoint_sections`` settings that count."""
        return cfg.fingerprint(*cls.checkpoint_sections, leave_out=cls.settings_left_out(cfg))

    @classmethod
    def accepted_checkpoint_fingerprints(cls, cfg: ExperimentConfig) -> frozenset[str]:
        """Today's fingerprint and those of older checkpoints, whose hash still counted the run's
        length (such a checkpoint resumes only at its own length), or also the cadence settings."""
        return frozenset({cls.checkpoint_fingerprint(cfg),
                          cfg.fingerprint(*cls.checkpoint_sections, leave_out=NOT_COMPARED | CADENCE_SETTINGS),
                          cfg.fingerprint(*cls.checkpoint_sections, leave_out=NOT_COMPARED)})

    @classmethod
    def read_checkpoint(cls, cfg: ExperimentConfig, path: str | Path, fix: str | None = None) -> dict:
        """Load the checkpoint at ``path`` for a run of ``cfg``, refusing one written for another
        configuration with the settings that differ and ``fix`` (default: the training loop's
        advice, ``refusal_fix``); load_checkpoint's errors otherwise."""
        state = load_checkpoint(path)
        if state.get("fingerprint") not in cls.accepted_checkpoint_fingerprints(cfg):
            raise CheckpointError(f"checkpoint {path} was written for another configuration "
                                  f"({cls._what_differs(cfg, state.get('config'))}); {fix or cls.refusal_fix}")
        return state

    @classmethod
    def read_finished_checkpoint(cls, cfg: ExperimentConfig, path: str | Path) -> dict:
        """:meth:`read_checkpoint`, refusing a checkpoint that is not at the run's length (stopped
        early, or trained further): what a measurement of the finished run must read."""
        # a measurement only reads: the training loop's advice (delete it, retrain) would lose a run
        state = cls.read_checkpoint(cfg, path, fix="give the checkpoint of the run these settings describe")
        if state["iteration"] != cls.length_of(cfg):
            raise CheckpointError(f"{path}: the {cls.name} is at iteration {state['iteration']}, not the run's "
                                  f"{cls.length_of(cfg)} ({cls.length_setting}); finish it (drnet train) first")
        return state

    @classmethod
    def _what_differs(cls, cfg: ExperimentConfig, saved: dict | None) -> str:
        """``"train.lr 0.001 here, 0.0002 in the checkpoint; ..."`` over the settings that count;
        a generic phrase where the checkpoint holds no readable configuration (an older pose LSTM's)."""
        try:
            theirs = config_from_dict(saved)
        except (TypeError, KeyError):  # no configuration saved, or one with settings since removed
            return "its saved settings cannot be compared with these"
        left_out = cls.settings_left_out(cfg)
        rows = [(key, getattr(cfg, key), getattr(theirs, key)) for key in ("experiment", "seed")
                if key in cls.checkpoint_sections and getattr(cfg, key) != getattr(theirs, key)]
        rows += [(key, ours, saved_value) for key, ours, saved_value in differences(cfg, theirs)
                 if key.split(".")[0] in cls.checkpoint_sections and key not in left_out]
        if not rows and cls.length_setting and cls.length_of(theirs) != cls.length_of(cfg):   # only the length differs
            return (f"it was written before a run's length left the fingerprint, so it resumes only at its "
                    f"own {cls.length_setting}, {cls.length_of(theirs)}")
        if not rows:
            return "its settings match these, but its fingerprint does not"
        return "; ".join(f"{key} {ours!r} here, {saved_value!r} in the checkpoint" for key, ours, saved_value in rows)

    @property
    def fingerprint(self) -> str:
        return self.checkpoint_fingerprint(self.cfg)

    @property
    def accepted_fingerprints(self) -> frozenset[str]:
        return self.accepted_checkpoint_fingerprints(self.cfg)

    def step(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, checkpoint_path: str | Path | None = None, progress: bool = True) -> list[dict]:
        """Run until ``self.iterations``; a finished run returns at once. Ctrl-C or SIGTERM stops
        it after the current iteration with a checkpoint there (:class:`TrainingInterrupted`);
        under torchrun (several processes) they stop it at once, as usual, since the processes
        could not agree on one iteration to stop at."""
        current_commit()   # the code's commit and state, read now: HEAD may move while it trains (results.code_state)
        window, n_window = self._window, self._n_window  # a log window cut by a resume continues
        # no bar for a finished run: run() has said that it was read, and a full bar would say it trained
        bar = tqdm(total=self.iterations, initial=self.iteration, desc=self.name, dynamic_ncols=True,
                   disable=not progress or self.rank != 0 or self.iteration >= self.iterations)
        start = time.perf_counter()
        try:
            with stop_requests(enabled=self.world == 1) as stop:
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
                    due = self.iteration % self.checkpoint_every == 0 or last or stop["signal"]
                    if checkpoint_path and self.rank == 0 and due:
                        self._window, self._n_window = window, n_window
                        now = time.perf_counter()
                        self.wall_s, start = self.wall_s + now - start, now
                        self.save(checkpoint_path)
                    if stop["signal"] and not last:
                        raise TrainingInterrupted(self._interrupted_message(stop["signal"], checkpoint_path))
        finally:
            bar.close()
            self.wall_s += time.perf_counter() - start
        note_model(self.model_key(checkpoint_path), self.training_record())
        return self.history

    def model_key(self, checkpoint_path=None) -> str:
        """How results files name this model (``provenance.models``): its checkpoint's folder and
        file (``mnist_seed0/drnet.pt``), or the loop's name for a run that keeps no checkpoint."""
        return f"{Path(checkpoint_path).parent.name}/{Path(checkpoint_path).name}" if checkpoint_path else self.name

    def training_record(self) -> dict:
        """What a results file says of this model: its iterations, those this process trained (0: a
        finished checkpoint read to be measured), its training minutes over every session, and the
        commit whose code last trained it (None: a checkpoint older than that record)."""
        trained_here = self.iteration - self.resumed_iteration
        return {"iterations": self.iteration, "iterations_this_process": trained_here,
                "training_min": round(self.wall_s / 60, 1),
                "trained_at_commit": current_commit() if trained_here else self.resumed_commit}

    def _interrupted_message(self, signal_name: str, checkpoint_path) -> str:
        where = (f"checkpoint saved at {checkpoint_path}; run the same command (or notebook cell) again to continue from there"
                 if checkpoint_path else "no checkpoint path was given, so this progress is not kept")
        return f"{self.name} stopped by {signal_name} at iteration {self.iteration} of {self.iterations}: {where}"

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
            "config": self.cfg.to_dict(),   # to name the settings that differ when a resume is refused
            "processes": self.world,         # to say so when a run resumes with another number
            "git_commit": current_commit(),  # the code that trained it, for a run that later only reads it
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

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(self.state_dict(), path)

    def resume(self, path: str | Path) -> bool:
        """Load ``path`` if it exists (refusing another configuration's, or one already past
        ``iterations``); True if it did."""
        path = Path(path)
        if not path.exists():
            return False
        state = self.read_checkpoint(self.cfg, path)
        if state["iteration"] > self.iterations:
            raise CheckpointError(
                f"checkpoint {path} is at iteration {state['iteration']}, past the {self.iterations} asked for "
                f"({self.length_setting}); ask for at least {state['iteration']}, or use another checkpoint "
                f"folder for the shorter run")
        try:
            self.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:  # a key missing, a tensor of another shape
            raise CheckpointError(f"checkpoint {path} is incomplete or damaged ({err.__class__.__name__}: {err}); {START_OVER}") from err
        self.resumed_wall_s = self.wall_s
        self.resumed_world = state.get("processes")   # checkpoints before it was recorded: None
        self.resumed_commit = state.get("git_commit")  # the same
        self.resumed_iteration = self.iteration
        return True

    def other_world_note(self) -> str:
        """What changes when a run resumes in another number of processes than trained its
        checkpoint: the global batch, its draws and the updates stay the same (distributed.py),
        but BatchNorm normalises over each process's share of the batch, and the results record
        only the processes that finished the run (provenance.processes)."""
        if self.iteration >= self.iterations:   # finished: loaded to be measured, nothing trains
            return (f"{self.name}: the checkpoint was trained by {self.resumed_world} process(es) and is read "
                    f"here by {self.world}: a results file written by this run records {self.world} "
                    f"(provenance.processes), not the processes that trained it")
        return (f"{self.name}: the checkpoint was trained by {self.resumed_world} process(es) and continues "
                f"in {self.world}: the same global batch and updates, except that BatchNorm normalises over "
                f"a share of 1/{self.world} of the batch instead of 1/{self.resumed_world} from here on; a "
                f"results file written by this run records {self.world} (provenance.processes)")

    def run(self, checkpoint_path=None, resume: bool = True, progress: bool = True):
        """Resume (or start over, replacing an old checkpoint at the first save) and train to the end."""
        if checkpoint_path and resume:
            if self.resume(checkpoint_path) and self.rank == 0:
                if self.iteration < self.iterations:
                    print(f"{self.name}: continuing from iteration {self.iteration} of {self.iterations} "
                          f"(checkpoint {checkpoint_path})")
                else:   # a results file written now names this code's commit, not the one that trained
                    print(f"{self.name}: finished checkpoint {checkpoint_path} read, not trained again "
                          f"({self.iterations} iterations, {self.wall_s / 60:.1f} min of training, last at "
                          f"commit {(self.resumed_commit or 'not recorded')[:12]})")
                if self.resumed_world not in (None, self.world):   # a finished one too: it is measured here
                    print(self.other_world_note())
        # Starting over leaves an old checkpoint in place until this run writes its first one over
        # it: a run that stops before then (a bad setting, a crash) loses nothing.
        self.fit(checkpoint_path, progress=progress)
        return self
