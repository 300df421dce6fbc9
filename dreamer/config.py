"""Frozen, typed configuration records and command-line overrides.

Every setting of a run lives in one frozen dataclass tree. Presets (``experiments/``) are
functions that return such a tree; ``apply_overrides`` replaces leaves from ``key=value``
strings (``search.num_simulations=16``) with type checking; ``to_dict``/``from_dict`` give
the JSON form stored as ``config.json`` in every run folder.

The configs hold values only: they never build environments or compute anything.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Literal, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or override that cannot be used, with the fix in the message."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class EnvConfig:
    """Which environment to make, and its options (passed to ``envs.make``)."""

    id: str = "CartPole-v1"
    """gymnasium id (``CartPole-v1``, ``ALE/Pong-v5``), ``package.module:factory``, or a name
    registered with ``envs.register`` (by a module in ``imports``) or by a package's
    ``dreamer.envs`` entry point."""
    imports: tuple[str, ...] = ()
    """Modules imported before the env is made, e.g. one that registers short env names
    (``--import my_pkg.my_envs``); eval, resume and benchmarks import them again."""
    num_envs: int = 1
    """Environments stepped together; one batched search call serves all of them."""
    num_eval_envs: int = 8
    """Environments stepped together during evaluation."""
    vectorization: Literal["sync", "async"] = "sync"
    """gymnasium vector-env flavour: ``sync`` (one process) or ``async`` (subprocesses)."""
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Keyword arguments of the env: your factory's own (``{"size": 4}``), gymnasium's
    ``make`` kwargs, or the Atari protocol's options (``{"grayscale": true}``)."""

    def __post_init__(self) -> None:
        _require(self.num_envs > 0, "env.num_envs", self.num_envs, "a positive integer")
        _require(self.num_eval_envs > 0, "env.num_eval_envs", self.num_eval_envs, "positive")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Budget, seeding and bookkeeping of a run; shared by every algorithm."""

    seed: int = 0
    """Seed of every random stream of the run (networks, search, environments)."""
    env_steps: int = 5_000
    """Real environment steps to collect (summed over parallel environments)."""
    eval_every: int = 500
    """Evaluate every this many env steps (and at the end); 0 disables periodic evaluation."""
    eval_episodes: int = 8
    """Episodes per periodic evaluation."""
    final_eval_episodes: int = 8
    """Episodes of the final evaluation (32 for the Atari 100k protocol)."""
    log_every: int = 250
    """Write a metrics row every this many env steps."""
    checkpoint_every: int = 1_000
    """Save a checkpoint every this many env steps (and at the end); 0 saves only at the end."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk; the newest complete one is used by ``resume``."""
    progress: bool = True
    """Show a progress bar (env steps, return, ETA) on the terminal."""

    def __post_init__(self) -> None:
        _require(self.env_steps > 0, "run.env_steps", self.env_steps, "a positive integer")
        _require(self.eval_episodes > 0, "run.eval_episodes", self.eval_episodes, "positive")
        _require(self.log_every > 0, "run.log_every", self.log_every, "positive")


def _require(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} is invalid: expected {expected}.")


# ---------------------------------------------------------------------------------------------
# Generic machinery over any frozen dataclass tree.


def to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-ready nested dict of a config tree (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=list))


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a config of type ``cls`` from ``to_dict`` output, checking every value."""
    hints = typing.get_type_hints(cls)
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"unknown config keys for {cls.__name__}: {sorted(unknown)}")
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name in data:
            kwargs[field.name] = _coerce(hints[field.name], data[field.name], field.name)
    return cls(**kwargs)


SHOW_CONFIG = "python -m dreamer show-config --preset NAME"
"""The command that lists every key; the CLI passes one naming the run's --algo and preset."""


def apply_overrides(
    cfg: T, overrides: list[str] | tuple[str, ...], *, show_config: str = SHOW_CONFIG
) -> T:
    """Return ``cfg`` with each ``dotted.key=value`` override applied.

    Values are parsed as JSON where possible (``16``, ``0.5``, ``true``, ``[1, 2]``) and
    otherwise taken as strings, then checked against the field's type. Overrides of one
    section are applied together, so fields that are validated jointly can change together.
    """
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. run.seed=1).")
        key, raw = item.split("=", 1)
        *sections, leaf = key.strip().split(".")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r} conflicts with another override.")
        node[leaf] = _Leaf(_parse_value(raw.strip(), key.strip()))
    return _replace_nested(cfg, nested, "", show_config)


class _Leaf:
    """An override value (distinguishes values from nested sections)."""

    def __init__(self, value: Any):
        self.value = value


def replace_path(cfg: T, key: str, value: Any) -> T:
    """Return ``cfg`` with the leaf at dotted ``key`` replaced by ``value`` (type-checked)."""
    *sections, leaf = key.split(".")
    nested: dict[str, Any] = {leaf: _Leaf(value)}
    for section in reversed(sections):
        nested = {section: nested}
    return _replace_nested(cfg, nested, "", SHOW_CONFIG)


def _replace_nested(cfg: T, changes: dict[str, Any], prefix: str, show_config: str) -> T:
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    hints = typing.get_type_hints(type(cfg))
    kwargs = {}
    for name, change in changes.items():
        full = prefix + name
        if name not in fields:
            valid = ", ".join(sorted(fields))
            raise ConfigError(
                f"unknown config key {full!r} in {type(cfg).__name__}; valid keys here: "
                f"{valid}. Run `{show_config}` to list every key."
            )
        current = getattr(cfg, name)
        if isinstance(change, _Leaf):
            if dataclasses.is_dataclass(current):
                raise ConfigError(f"config key {full!r} is a section; set one of its fields.")
            kwargs[name] = _coerce(hints[name], change.value, full)
        else:
            if not dataclasses.is_dataclass(current):
                raise ConfigError(f"config key {name!r} is a value, not a section: {full!r}.")
            kwargs[name] = _replace_nested(current, change, full + ".", show_config)
    try:
        return dataclasses.replace(cfg, **kwargs)
    except ConfigError as e:
        raise ConfigError(f"override of {prefix.rstrip('.') or 'config'}: {e}") from None


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted-key view of every leaf, e.g. for ``show-config`` and hyperparameter logging."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        key = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, key + "."))
        else:
            out[key] = value
    return out


def _parse_value(raw: str, key: str = "value") -> Any:
    """JSON if ``raw`` is JSON, else the string itself; a mapping or list that is not valid
    JSON is an error (it was surely meant as JSON)."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        if raw[:1] in "{[":
            raise ConfigError(
                f"{key}={raw}: invalid JSON: {e.msg} (column {e.colno}). Write JSON with "
                "double-quoted keys and quote the whole override for the shell, e.g. "
                """--set 'env.options={"size": 4}'."""
            ) from None
        return raw


def _coerce(tp: Any, value: Any, name: str) -> Any:
    """Check ``value`` against type annotation ``tp`` and convert where lossless."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping for section {tp.__name__}.")
        return from_dict(tp, value)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name}={value!r} is invalid: choose one of {list(args)}.")
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _coerce(arg, value, name)
            except ConfigError:
                continue
        raise ConfigError(f"{name}={value!r} does not match type {tp}.")
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(
                f"{name}={value!r} is invalid: expected a JSON mapping such as "
                """{"size": 4} (quote it for the shell: --set '%s={"size": 4}').""" % name
            )
        return dict(value)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name}={value!r} is invalid: expected a list such as [64, 64].")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, name) for v in value)
        if len(args) != len(value):
            raise ConfigError(f"{name}={value!r}: expected {len(args)} items.")
        return tuple(_coerce(a, v, name) for a, v in zip(args, value, strict=True))
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{name}={value!r}: expected null.")
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}={value!r} is invalid: expected true or false.")
        return value
    if tp is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise ConfigError(f"{name}={value!r} is invalid: expected an integer.")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name}={value!r} is invalid: expected a number.")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}={value!r} is invalid: expected a string.")
        return value
    return value


# ---------------------------------------------------------------------------------------------
# EfficientZero.


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Representation, dynamics (with value-prefix LSTM) and prediction networks."""

    kind: Literal["auto", "mlp", "conv"] = "auto"
    """Trunk: ``conv`` for image observations, ``mlp`` for vectors, ``auto`` picks by shape."""
    latent_dim: int = 64
    """MLP trunk: size of the latent state."""
    hidden: tuple[int, ...] = (128, 128)
    """MLP trunk: hidden layer sizes of representation and dynamics."""
    channels: int = 64
    """Conv trunk: channels of the residual tower (EfficientZero: 64)."""
    num_blocks: int = 1
    """Conv trunk: residual blocks in representation and in dynamics."""
    reduced_channels: int = 16
    """Conv trunk: 1x1-conv channels before the value / prefix / policy heads."""
    head_hidden: tuple[int, ...] = (32,)
    """Hidden sizes of the value, value-prefix and policy heads."""
    lstm_hidden: int = 512
    """Hidden size of the value-prefix LSTM."""
    lstm_horizon: int = 5
    """The LSTM state and the accumulated prefix reset every this many dynamics steps."""
    value_support: int = 300
    """Value support is the integers in [-value_support, value_support] after h(x)."""
    reward_support: int = 300
    """Value-prefix support, likewise."""
    norm: Literal["batch", "layer"] = "batch"
    """Normalisation layers: BatchNorm (as in EfficientZero) or LayerNorm."""
    proj_hidden: int = 1024
    """SimSiam projection hidden size."""
    proj_out: int = 1024
    """SimSiam projection output size."""
    pred_hidden: int = 512
    """SimSiam predictor hidden size."""
    dynamics_grad_scale: float = 0.5
    """Gradient scale applied to the latent at each dynamics step (MuZero/EfficientZero)."""

    def __post_init__(self) -> None:
        _require(self.lstm_horizon > 0, "model.lstm_horizon", self.lstm_horizon, "positive")
        _require(self.value_support > 0, "model.value_support", self.value_support, "positive")
        _require(self.reward_support > 0, "model.reward_support", self.reward_support, "positive")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """Monte-Carlo tree search through mctx."""

    policy: Literal["muzero", "gumbel"] = "muzero"
    """``muzero`` (pUCT with root Dirichlet noise) or ``gumbel`` (Gumbel MuZero)."""
    num_simulations: int = 50
    """Simulations per search."""
    qtransform: Literal["tree_min_max", "parent_siblings", "completed_mix"] = "tree_min_max"
    """Q normalisation: EfficientZero's whole-tree min-max, mctx's parent-and-siblings, or
    Gumbel's completed-by-mix-value (used by the gumbel policy when tree_min_max is set)."""
    dirichlet_alpha: float = 0.3
    """Root Dirichlet noise concentration (muzero policy)."""
    dirichlet_fraction: float = 0.25
    """Weight of the Dirichlet noise in the root prior (muzero policy)."""
    pb_c_init: float = 1.25
    """pUCT exploration constant c1."""
    pb_c_base: float = 19652.0
    """pUCT exploration constant c2."""
    max_num_considered_actions: int = 16
    """Gumbel: actions considered at the root by sequential halving."""
    gumbel_scale: float = 1.0
    """Gumbel: scale of the root Gumbel noise during acting."""
    temperatures: tuple[float, ...] = (1.0, 0.5, 0.25)
    """Visit-count temperature while acting, one per training phase."""
    temperature_milestones: tuple[float, ...] = (0.5, 0.75)
    """Fractions of the env-step budget at which the next temperature starts."""

    def __post_init__(self) -> None:
        _require(self.num_simulations > 0, "search.num_simulations", self.num_simulations, ">0")
        _require(
            len(self.temperatures) == len(self.temperature_milestones) + 1,
            "search.temperatures",
            self.temperatures,
            "one more entry than search.temperature_milestones",
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReplayConfig:
    """Prioritised sequence replay and target construction."""

    capacity: int = 100_000
    """Transitions kept (frames stored once); memory stays flat once full."""
    batch_size: int = 256
    """Sequences per update."""
    unroll_steps: int = 5
    """K: dynamics steps unrolled in training."""
    td_steps: int = 5
    """n of the n-step value target."""
    discount: float = 0.997
    """Discount factor gamma."""
    priority_alpha: float = 0.6
    """Priority exponent alpha (0 = uniform sampling)."""
    priority_beta: float = 0.4
    """Importance-sampling exponent beta at the start; annealed linearly to 1."""
    priority_eps: float = 1e-6
    """Added to |value error| to form a priority."""
    reanalyze_fraction: float = 0.99
    """Fraction of the batch whose policy targets come from a fresh search by the target net."""
    reanalyze_simulations: int = 0
    """Simulations of the reanalysis search; 0 means search.num_simulations."""
    off_policy_correction: bool = True
    """EfficientZero's shorter value horizon for older data."""
    off_policy_age_ratio: float = 0.3
    """Horizon shrinks by one for data this fraction of the env-step budget old."""

    def __post_init__(self) -> None:
        _require(self.batch_size > 0, "replay.batch_size", self.batch_size, "positive")
        _require(self.unroll_steps > 0, "replay.unroll_steps", self.unroll_steps, "positive")
        _require(self.td_steps > 0, "replay.td_steps", self.td_steps, "positive")
        _require(0 < self.discount <= 1, "replay.discount", self.discount, "in (0, 1]")
        _require(
            0 <= self.reanalyze_fraction <= 1,
            "replay.reanalyze_fraction",
            self.reanalyze_fraction,
            "in [0, 1]",
        )
        _require(self.capacity > 0, "replay.capacity", self.capacity, "positive")


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimConfig:
    """Optimiser, schedule and loss weights."""

    optimizer: Literal["sgd", "adam"] = "sgd"
    """SGD with momentum (EfficientZero) or Adam."""
    learning_rate: float = 0.2
    """Peak learning rate."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 1e-4
    """L2 weight decay (added to gradients, as in EfficientZero's SGD)."""
    warmup_updates: int = 1_000
    """Linear warm-up from 0 to the peak learning rate."""
    decay: Literal["step", "cosine", "none"] = "step"
    """After warm-up: step decay, cosine to 0, or constant."""
    decay_updates: int = 100_000
    """Step decay: multiply by decay_rate every this many updates. Not used by ``cosine``,
    which decays to 0 over the run's total updates, nor by ``none``."""
    decay_rate: float = 0.1
    """Step decay factor."""
    max_grad_norm: float = 5.0
    """Global gradient-norm clip."""
    value_weight: float = 0.25
    """Weight of the value loss."""
    policy_weight: float = 1.0
    """Weight of the policy loss."""
    reward_weight: float = 1.0
    """Weight of the value-prefix loss."""
    consistency_weight: float = 2.0
    """Weight of the temporal-consistency (SimSiam) loss."""
    target_update_every: int = 200
    """Copy online parameters to the target network every this many updates."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoopConfig:
    """How acting and learning interleave."""

    warmup_steps: int = 2_000
    """Env steps collected (by search with the initial networks) before learning starts."""
    replay_ratio: float = 1.0
    """Updates per real env step once learning has started."""
    extra_updates: int = 0
    """Updates after the last env step (EfficientZero trains on after collection ends)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """A whole EfficientZero run."""

    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    replay: ReplayConfig = dataclasses.field(default_factory=ReplayConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    loop: LoopConfig = dataclasses.field(default_factory=LoopConfig)

    @property
    def total_updates(self) -> int:
        """Updates the whole run will make (for schedules)."""
        learn_steps = max(0, self.run.env_steps - self.loop.warmup_steps)
        return int(learn_steps * self.loop.replay_ratio) + self.loop.extra_updates
