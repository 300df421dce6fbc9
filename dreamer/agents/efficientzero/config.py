"""Frozen, typed configuration records of an EfficientZero run, with their ranges checked.

Every setting of a run lives in one frozen dataclass tree. Presets (``experiments/``) are
functions that return such a tree; ``apply_overrides`` replaces leaves from ``key=value``
strings (``search.num_simulations=16``) with type checking; ``to_dict``/``from_dict`` give
the JSON form stored as ``config.json`` in every run folder (that machinery lives in
``dreamer.core.configtree`` and is re-exported here, with the shared ``env`` and ``run``
sections of ``dreamer.core.config``). Each record checks the range of every
numeric field when it is made, so a bad value stops with one message naming the key.

The configs hold values only: they never build environments or compute anything.
"""

from __future__ import annotations

import dataclasses
import fractions
import math
from typing import Literal

from dreamer.core.config import EnvConfig, RunConfig
from dreamer.core.configtree import (
    ConfigError,
    all_positive,
    apply_overrides,
    flatten,
    fraction,
    from_dict,
    non_negative,
    positive,
    replace_path,
    require,
    to_dict,
)

__all__ = [
    "Config",
    "ConfigError",
    "DreamConfig",
    "EnvConfig",
    "LoopConfig",
    "ModelConfig",
    "OptimConfig",
    "ReplayConfig",
    "RunConfig",
    "SearchConfig",
    "apply_overrides",
    "flatten",
    "from_dict",
    "replace_path",
    "to_dict",
]


SMALL_FRAME = 16
"""Frames of at most this many pixels a side keep their size in the conv trunk (``auto``)."""


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
    downsample: Literal["auto", "efficientzero", "none"] = "auto"
    """Conv trunk: ``efficientzero`` shrinks frames 16x (96 -> 6: strided convs and pooling,
    built for Atari) to a spatial latent; ``none`` keeps the frame's size (a 3x3 conv stem and
    residual blocks, as MinAtar agents use), then a dense layer makes a vector latent of
    ``latent_dim`` for the MLP dynamics; ``auto`` picks ``none`` for frames of at most
    ``SMALL_FRAME`` (16) pixels a side and ``efficientzero`` above."""
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
    state_norm: bool = False
    """Min-max normalise every latent to [0, 1] per example (EfficientZero's ``state_norm``;
    off in its Atari configuration)."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Compute dtype of convolutions, dense layers and the LSTM. Parameters, normalisation
    statistics, supports, losses and search values stay float32."""

    def __post_init__(self) -> None:
        for name in ("latent_dim", "channels", "reduced_channels", "lstm_hidden", "lstm_horizon"):
            positive(f"model.{name}", getattr(self, name))
        for name in ("value_support", "reward_support", "proj_hidden", "proj_out", "pred_hidden"):
            positive(f"model.{name}", getattr(self, name))
        all_positive("model.hidden", self.hidden)
        all_positive("model.head_hidden", self.head_hidden)
        non_negative("model.num_blocks", self.num_blocks)
        fraction("model.dynamics_grad_scale", self.dynamics_grad_scale)

    def downsamples(self, frame_shape: tuple[int, ...]) -> bool:
        """Whether the conv trunk shrinks frames ``[H, W, C]`` EfficientZero's way."""
        if self.downsample == "auto":
            return max(frame_shape[:2]) > SMALL_FRAME
        return self.downsample == "efficientzero"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """Monte-Carlo tree search through mctx."""

    policy: Literal["muzero", "gumbel"] = "muzero"
    """``muzero`` (pUCT with root Dirichlet noise) or ``gumbel`` (Gumbel MuZero)."""
    num_simulations: int = 50
    """Simulations per search."""
    qtransform: Literal["tree_min_max", "parent_siblings", "completed_mix"] = "tree_min_max"
    """Q normalisation: EfficientZero's min-max over the whole tree with the spread floored at
    ``value_delta_max`` (pUCT form for ``muzero``; completed and scaled by ``c_visit`` and
    ``c_scale`` for ``gumbel``), mctx's parent-and-siblings, or mctx's completed-by-mix-value
    (each node by its own min and max: any Q gap becomes the full scale)."""
    value_delta_max: float = 0.01
    """``tree_min_max``: floor on the tree's Q spread, so Q gaps below it stay small."""
    c_visit: float = 50.0
    """Gumbel: sigma(q) = (c_visit + max visits) * c_scale * normalised q (mctx, EZ-V2)."""
    c_scale: float = 0.1
    """Gumbel: scale of the normalised completed Q-values (see ``c_visit``)."""
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
    prior_mix: float = 0.0
    """Uniform mixing of the prior in every search (DreamerV3's 1% "unimix"): the search
    sees ``(1 - prior_mix) * softmax(logits) + prior_mix / A``, so no action's prior is ever
    near zero and sparse rewards behind an unlikely action can still be found."""
    temperatures: tuple[float, ...] = (1.0, 0.5, 0.25)
    """Visit-count temperature while acting, one per training phase."""
    temperature_milestones: tuple[float, ...] = (0.5, 0.75)
    """Fractions of the env-step budget at which the next temperature starts."""

    def __post_init__(self) -> None:
        positive("search.num_simulations", self.num_simulations)
        positive("search.dirichlet_alpha", self.dirichlet_alpha)
        fraction("search.dirichlet_fraction", self.dirichlet_fraction)
        positive("search.pb_c_init", self.pb_c_init)
        positive("search.pb_c_base", self.pb_c_base)
        positive("search.max_num_considered_actions", self.max_num_considered_actions)
        non_negative("search.gumbel_scale", self.gumbel_scale)
        positive("search.value_delta_max", self.value_delta_max)
        non_negative("search.c_visit", self.c_visit)
        positive("search.c_scale", self.c_scale)
        require(0 <= self.prior_mix < 1, "search.prior_mix", self.prior_mix, "a fraction in [0, 1)")
        require(
            all(t >= 0 for t in self.temperatures),
            "search.temperatures",
            self.temperatures,
            "temperatures >= 0 (0 acts greedily)",
        )
        require(
            len(self.temperatures) == len(self.temperature_milestones) + 1,
            "search.temperatures",
            self.temperatures,
            "one more entry than search.temperature_milestones",
        )
        milestones = self.temperature_milestones
        require(
            all(0 < m < 1 for m in milestones) and list(milestones) == sorted(set(milestones)),
            "search.temperature_milestones",
            milestones,
            "increasing fractions of the budget, each in (0, 1)",
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReplayConfig:
    """Prioritised sequence replay and target construction."""

    capacity: int = 100_000
    """Transitions kept (frames stored once); memory stays flat once full. A new run
    allocates no more than its budget fills (``Config.sized_to_budget``)."""
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
    reanalyze_mode: Literal["cached", "per_batch"] = "cached"
    """``cached``: the target network's values and reanalysed policies are computed once per
    target-network period for every stored state (and for new states as they arrive) and
    looked up when sampling; ``per_batch``: computed afresh for every sampled batch."""
    refresh_chunk: int = 4096
    """Cached mode: states searched per call when the target cache is refreshed."""
    value_target: Literal["nstep", "search", "mixed"] = "nstep"
    """Value target z_k: ``nstep`` the n-step return bootstrapped from the target network;
    ``search`` the root value of the target network's search at o_{t+k} (a return imagined
    over the model); ``mixed`` EfficientZero-V2's choice between them (``mixed_start_update``,
    ``mixed_fresh_transitions``). ``search`` and ``mixed`` search every sampled position,
    whatever ``reanalyze_fraction``."""
    mixed_start_update: int = 30_000
    """``mixed``: every target is n-step until this many updates are made (EfficientZero-V2's
    ``start_use_mix_training_steps``, 3e4 on Atari)."""
    mixed_fresh_transitions: int = 5_000
    """``mixed``: afterwards a sample among this many newest transitions keeps the n-step
    target, an older one takes the search value (EfficientZero-V2's ``mixed_value_threshold``,
    5e3 on Atari: n-step where ``idx > collected_transitions - threshold``)."""

    def __post_init__(self) -> None:
        positive("replay.capacity", self.capacity)
        positive("replay.batch_size", self.batch_size)
        positive("replay.unroll_steps", self.unroll_steps)
        positive("replay.td_steps", self.td_steps)
        require(0 < self.discount <= 1, "replay.discount", self.discount, "in (0, 1]")
        non_negative("replay.priority_alpha", self.priority_alpha)
        fraction("replay.priority_beta", self.priority_beta)
        positive("replay.priority_eps", self.priority_eps)
        fraction("replay.reanalyze_fraction", self.reanalyze_fraction)
        non_negative("replay.reanalyze_simulations", self.reanalyze_simulations)
        positive("replay.off_policy_age_ratio", self.off_policy_age_ratio)
        positive("replay.refresh_chunk", self.refresh_chunk)
        require(
            self.value_target in ("nstep", "search", "mixed"),
            "replay.value_target",
            self.value_target,
            "one of nstep, search, mixed",
        )
        non_negative("replay.mixed_start_update", self.mixed_start_update)
        non_negative("replay.mixed_fresh_transitions", self.mixed_fresh_transitions)

    @property
    def sequence_length(self) -> int:
        """Consecutive steps of one env that a training sequence spans: K + n + 1."""
        return self.unroll_steps + self.td_steps + 1

    @property
    def reanalysed_rows(self) -> int:
        """Sequences of each batch whose policy targets are reanalysed (the first ones)."""
        return int(round(self.reanalyze_fraction * self.batch_size))

    @property
    def searched_rows(self) -> int:
        """Sequences of each batch the target network searches at every unrolled position:
        all of them when value targets come from search, else the reanalysed ones."""
        return self.batch_size if self.value_target != "nstep" else self.reanalysed_rows


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
    unroll_scale: Literal["loss", "heads"] = "loss"
    """Where the 1/K gradient scale applies: ``loss`` scales the gradient of the whole loss
    (the EfficientZero code), ``heads`` only the heads of the K unrolled steps (the MuZero
    pseudocode)."""
    augmentation: tuple[Literal["shift", "intensity"], ...] = ("shift", "intensity")
    """Image observations only: augmentations of the step-0 input and of the observations
    that give the consistency targets (EfficientZero: random shift, then intensity)."""
    shift_pad: int = 4
    """Random shift: replicate-pad this many pixels, then crop back at a random offset."""
    intensity_scale: float = 0.05
    """Intensity: multiply each example by 1 + scale * clip(N(0, 1), -2, 2)."""

    def __post_init__(self) -> None:
        positive("optim.learning_rate", self.learning_rate)
        require(0 <= self.momentum < 1, "optim.momentum", self.momentum, "in [0, 1)")
        non_negative("optim.weight_decay", self.weight_decay)
        non_negative("optim.warmup_updates", self.warmup_updates)
        positive("optim.decay_updates", self.decay_updates)
        require(0 < self.decay_rate <= 1, "optim.decay_rate", self.decay_rate, "in (0, 1]")
        positive("optim.max_grad_norm", self.max_grad_norm)
        for name in ("value_weight", "policy_weight", "reward_weight", "consistency_weight"):
            non_negative(f"optim.{name}", getattr(self, name))
        positive("optim.target_update_every", self.target_update_every)
        non_negative("optim.shift_pad", self.shift_pad)
        non_negative("optim.intensity_scale", self.intensity_scale)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoopConfig:
    """How acting and learning interleave."""

    warmup_steps: int = 2_000
    """Env steps collected (by search with the initial networks) before learning starts; the
    warm-up is the larger of this and ``warmup_fraction`` of the budget."""
    warmup_fraction: float = 0.0
    """Warm-up as a fraction of ``run.env_steps`` (budget-relative; see ``warmup_steps``)."""
    replay_ratio: float = 1.0
    """Updates per real env step once learning has started."""
    extra_updates: int = 0
    """Updates after the last env step (EfficientZero trains on after collection ends)."""
    devices: int = 1
    """Local devices one run's updates and target-cache refreshes are split over by batch rows
    (data parallel, ``dreamer.core.sharding``): 1 is one device, 0 every local device. Host
    loop, one seed per process."""

    def __post_init__(self) -> None:
        non_negative("loop.warmup_steps", self.warmup_steps)
        non_negative("loop.devices", self.devices)
        require(
            0 <= self.warmup_fraction < 1,
            "loop.warmup_fraction",
            self.warmup_fraction,
            "a fraction of the budget in [0, 1)",
        )
        non_negative("loop.replay_ratio", self.replay_ratio)
        non_negative("loop.extra_updates", self.extra_updates)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DreamConfig:
    """Dreaming: policy targets from searches at imagined states of the learned model.

    Each update takes ``ceil(ratio * batch_size / horizon)`` real replayed states, encodes
    them with the target network and rolls its dynamics ``horizon`` steps forward, drawing
    actions from its policy prior at temperature 1. A search of ``simulations`` simulations
    (``search``) at every imagined latent gives an improved policy; the online prediction head
    at the same (stop-gradient) imagined latents learns it by cross-entropy, weighted by
    ``policy_weight``. So ``ratio`` is imagined target states per real sampled state: with
    ``replay.batch_size=128``, ``ratio=2`` and ``horizon=4``, each update imagines from 64 real
    states, 4 steps each, 256 imagined targets next to the 128 real sequences.
    """

    ratio: float = 0.0
    """Imagined target states per real sampled state in each update; 0 turns dreaming off."""
    horizon: int = 3
    """Imagined steps from each real start (at most ``replay.unroll_steps``, the depth the
    model is trained to)."""
    search: Literal["agent", "gumbel"] = "agent"
    """The search at imagined latents: ``agent`` is the agent's own search (``search.*``, the
    kind that gives the real policy targets) with ``simulations`` simulations; ``gumbel`` is
    Gumbel MuZero's improved policy. On CartPole (docs/dreaming.md) both collapsed the policy
    at ratio 4; ``agent`` is the default because its targets are of the same kind as the real
    ones."""
    simulations: int = 8
    """Simulations of the search at each imagined latent."""
    policy_weight: float = 0.1
    """Weight of the dream policy loss against the real policy loss. Measured on CartPole
    (docs/dreaming.md): at 1.0 the dream targets took over the policy head and collapsed it
    at ratios 1 and 4; at 0.1 (ratio 1) they did not."""
    value_weight: float = 0.0
    """Weight of a dream value loss toward the search's root value (0: off, the default)."""
    start: float = 0.25
    """Fraction of the update budget after which dreaming begins (a trained model first)."""
    max_disagreement: float = 0.5
    """Imagined states whose value head and search value disagree by more than this
    (``|v - v_search| / (1 + |v_search|)``) give no target."""

    def __post_init__(self) -> None:
        non_negative("dream.ratio", self.ratio)
        positive("dream.horizon", self.horizon)
        positive("dream.simulations", self.simulations)
        non_negative("dream.policy_weight", self.policy_weight)
        non_negative("dream.value_weight", self.value_weight)
        fraction("dream.start", self.start)
        positive("dream.max_disagreement", self.max_disagreement)


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
    dream: DreamConfig = dataclasses.field(default_factory=DreamConfig)

    def __post_init__(self) -> None:
        if self.dream.ratio > 0 and self.dream.horizon > self.replay.unroll_steps:
            raise ConfigError(
                f"dream.horizon={self.dream.horizon} is longer than replay.unroll_steps="
                f"{self.replay.unroll_steps}, the depth the dynamics are trained to; set "
                f"dream.horizon <= {self.replay.unroll_steps}."
            )
        minimum = self.env.num_envs * self.replay.sequence_length
        if self.replay.capacity < minimum:
            raise ConfigError(
                f"replay.capacity={self.replay.capacity} is too small: each of the "
                f"env.num_envs={self.env.num_envs} environments keeps capacity // num_envs "
                f"steps, and a training sequence spans replay.unroll_steps + replay.td_steps "
                f"+ 1 = {self.replay.sequence_length} of them. Set replay.capacity to at least "
                f"{minimum} (the presets keep 1,000 to 100,000)."
            )

    def sized_to_budget(self) -> Config:
        """This config with ``replay.capacity`` no larger than the run fills: its budget
        ``run.env_steps``, and at least a few sequences per environment.

        Sampling scans the whole allocation at every update, so a replay larger than the run
        only costs time (on CartPole at 5,000 steps, the ``default`` preset's 100,000 made
        each update about a third slower). It applies when a run starts: its ``config.json``
        records the allocation, so a resumed or extended run keeps the arrays it saved."""
        e = self.env.num_envs
        fills = e * max(-(-self.run.env_steps // e), self.replay.sequence_length + 32)
        if self.replay.capacity <= fills:
            return self
        return dataclasses.replace(self, replay=dataclasses.replace(self.replay, capacity=fills))

    @property
    def warmup_steps(self) -> int:
        """Env steps before learning starts: ``loop.warmup_steps`` or ``loop.warmup_fraction``
        of the budget, whichever is larger."""
        return max(self.loop.warmup_steps, round(self.loop.warmup_fraction * self.run.env_steps))

    @property
    def total_updates(self) -> int:
        """Updates the whole run will make (for schedules)."""
        learn_steps = max(0, self.run.env_steps - self.warmup_steps)
        return round(learn_steps * self.loop.replay_ratio) + self.loop.extra_updates

    @property
    def dream_start_update(self) -> int:
        """The first update that dreams (``dream.start`` of ``total_updates``); updates
        ``dream_start_update, ..., total_updates - 1`` dream when ``dream.ratio > 0``."""
        return math.ceil(self.dream.start * self.total_updates)

    @property
    def replay_ratio_fraction(self) -> tuple[int, int]:
        """``loop.replay_ratio`` as a fraction p / q (q <= 10,000), for exact update counts."""
        ratio = fractions.Fraction(self.loop.replay_ratio).limit_denominator(10_000)
        return ratio.numerator, ratio.denominator

    def updates_by(self, env_steps: int) -> int:
        """Updates made once ``env_steps`` real steps are collected (before the final
        ``loop.extra_updates``): ``floor((env_steps - warmup) * p / q)`` in integers, the same
        in the host loop and inside the fused loop."""
        p, q = self.replay_ratio_fraction
        return max(0, env_steps - self.warmup_steps) * p // q
