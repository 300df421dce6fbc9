"""Torsos and output heads shared by the model-free baselines (flax.linen).

Observations are either vectors ``[B, D]`` (any dtype) for the MLP torso, or image stacks
``[B, S, H, W, C]`` (uint8, stack axis first, as ``envs`` gives Atari frames) for the Nature
CNN (Mnih et al. 2015): the stack is folded into channels, ``[B, H, W, S*C]``, and scaled to
[0, 1]. Heads sit on top of a torso: DQN's ``QNetwork`` (``dqn.networks``, optionally dueling,
Wang et al. 2016) and PPO's ``ActorCritic`` (``ppo.networks``, policy logits and a state value,
shared or separate torsos).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from dreamer.agents.baselines.config import NetworkConfig
from dreamer.core.errors import ObservationSpaceError

Initializer = Callable[..., jax.Array]

HIDDEN_GAIN = math.sqrt(2.0)
"""Orthogonal-init gain of hidden layers (ReLU/tanh), as in the PPO implementations."""


def initializers(scheme: str, fan_in: int, scale: float) -> tuple[Initializer, Initializer]:
    """``(kernel_init, bias_init)`` of a layer with ``fan_in`` inputs.

    ``scale`` is the orthogonal gain; the other schemes ignore it.
    """
    if scheme == "orthogonal":
        return nn.initializers.orthogonal(scale), nn.initializers.zeros
    if scheme == "torch":
        bound = 1.0 / math.sqrt(fan_in)

        def bias_init(key: chex.PRNGKey, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
            return jax.random.uniform(key, shape, dtype, -bound, bound)

        return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"), bias_init
    return nn.initializers.lecun_normal(), nn.initializers.zeros


class Linear(nn.Module):
    """A dense layer with the configured initialisation."""

    features: int
    init: str
    scale: float = 1.0

    @nn.compact
    def __call__(self, x: chex.Array) -> chex.Array:
        kernel_init, bias_init = initializers(self.init, x.shape[-1], self.scale)
        return nn.Dense(self.features, kernel_init=kernel_init, bias_init=bias_init)(x)


class Conv(nn.Module):
    """A VALID-padded conv layer with the configured initialisation."""

    features: int
    kernel: int
    stride: int
    init: str
    scale: float = HIDDEN_GAIN

    @nn.compact
    def __call__(self, x: chex.Array) -> chex.Array:
        fan_in = self.kernel * self.kernel * x.shape[-1]
        kernel_init, bias_init = initializers(self.init, fan_in, self.scale)
        return nn.Conv(
            self.features,
            (self.kernel, self.kernel),
            (self.stride, self.stride),
            padding="VALID",
            kernel_init=kernel_init,
            bias_init=bias_init,
        )(x)


def torso_kind(cfg: NetworkConfig, obs_shape: tuple[int, ...]) -> str:
    """``mlp`` or ``conv`` for one observation of ``obs_shape`` (no batch axis)."""
    kind = cfg.kind
    if kind == "auto":
        kind = "conv" if len(obs_shape) >= 3 else "mlp"
    if kind == "conv" and len(obs_shape) not in (3, 4):
        raise ObservationSpaceError(
            f"network.kind=conv needs image observations [H, W, C] or [S, H, W, C], got shape "
            f"{obs_shape}; use network.kind=mlp (or auto)."
        )
    return kind


def stack_to_channels(obs: chex.Array) -> chex.Array:
    """``[B, S, H, W, C]`` or ``[B, H, W, C]`` images -> ``[B, H, W, S*C]`` floats in [0, 1]."""
    if obs.ndim == 5:
        b, s, h, w, c = obs.shape
        obs = jnp.transpose(obs, (0, 2, 3, 1, 4)).reshape(b, h, w, s * c)
    chex.assert_rank(obs, 4)
    return obs.astype(jnp.float32) / 255.0


class Torso(nn.Module):
    """MLP over flattened vectors or the Nature CNN over image stacks -> ``[B, F]``."""

    cfg: NetworkConfig

    @nn.compact
    def __call__(self, obs: chex.Array) -> chex.Array:
        cfg = self.cfg
        act = nn.relu if cfg.activation == "relu" else nn.tanh
        if torso_kind(cfg, obs.shape[1:]) == "conv":
            x = stack_to_channels(obs)
            for features, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
                x = nn.relu(Conv(features, kernel, stride, cfg.init)(x))
            x = x.reshape(x.shape[0], -1)
            if cfg.conv_dense:
                x = nn.relu(Linear(cfg.conv_dense, cfg.init, HIDDEN_GAIN)(x))
            return x
        x = obs.reshape(obs.shape[0], -1).astype(jnp.float32)
        for size in cfg.hidden:
            x = act(Linear(size, cfg.init, HIDDEN_GAIN)(x))
        return x


class Head(nn.Module):
    """Hidden layers then a linear output ``[B, outputs]``."""

    cfg: NetworkConfig
    outputs: int
    out_scale: float = 1.0

    @nn.compact
    def __call__(self, x: chex.Array) -> chex.Array:
        act = nn.relu if self.cfg.activation == "relu" else nn.tanh
        for size in self.cfg.head_hidden:
            x = act(Linear(size, self.cfg.init, HIDDEN_GAIN)(x))
        return Linear(self.outputs, self.cfg.init, self.out_scale)(x)
