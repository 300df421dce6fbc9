"""EfficientZero networks (Ye et al. 2021, Sec. 4 and App. A) in flax.

One module, ``EfficientZeroNet``, owns the representation h, the dynamics g with the
value-prefix LSTM, the prediction f and the SimSiam projection/predictor used by the
temporal-consistency loss. Its methods are the four things the rest of the code calls:

- ``represent(obs) -> latent``                                   s_0 = h(o_{t-S+1..t})
- ``predict(latent) -> (policy_logits, value_logits)``           p_k, v_k = f(s_k)
- ``dynamics(latent, lstm, action) -> (latent, lstm, prefix_logits)``   s_{k+1}, P_{k+1} = g(s_k, a)
- ``project(latent, predictor) -> vector``                       consistency branch

Two trunks share this interface: a residual conv tower for image stacks ``[S, H, W, C]``
and an MLP for vector observations. The conv tower down-samples 96x96 to a 6x6 latent as
EfficientZero does. Small frames (MinAtar's 10x10, ``model.downsample``) keep their size
through a 3x3 conv stem and residual blocks, then a dense layer makes a vector latent that
dynamics and prediction treat as they treat the MLP trunk's (a conv dynamics at full frame
size costs hundreds of times more per update on a CPU). Normalisation is
BatchNorm (as in EfficientZero) or LayerNorm; with BatchNorm, ``train=False`` (search,
acting, target computation) uses the running statistics and ``train=True`` updates them.
With ``model.state_norm`` latent states are min-max normalised to [0, 1] per example.
``model.dtype="bfloat16"`` computes convolutions, dense layers and the LSTM in bfloat16;
parameters, normalisation statistics and every head's output (logits) stay float32.
"""

from __future__ import annotations

import functools
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from dreamer.agents.efficientzero.config import ModelConfig

LSTMState = tuple[chex.Array, chex.Array]  # (c, h), each [B, lstm_hidden]


def scale_gradient(x: chex.Array, scale: float) -> chex.Array:
    """Identity forward; multiplies the gradient by ``scale``."""
    return x * scale + jax.lax.stop_gradient(x) * (1.0 - scale)


def normalize_latent(x: chex.Array) -> chex.Array:
    """Per-example min-max scaling of a latent to [0, 1] (EfficientZero)."""
    axes = tuple(range(1, x.ndim))
    lo = x.min(axis=axes, keepdims=True)
    hi = x.max(axis=axes, keepdims=True)
    return (x - lo) / jnp.maximum(hi - lo, 1e-5)


class Norm(nn.Module):
    kind: str
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: chex.Array, train: bool) -> chex.Array:
        if self.kind == "batch":
            return nn.BatchNorm(
                use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype
            )(x)
        return nn.LayerNorm(dtype=self.dtype)(x)


class ResBlock(nn.Module):
    channels: int
    norm: str
    stride: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: chex.Array, train: bool) -> chex.Array:
        conv = functools.partial(
            nn.Conv, kernel_size=(3, 3), padding="SAME", use_bias=False, dtype=self.dtype
        )
        y = conv(self.channels, strides=self.stride)(x)
        y = nn.relu(Norm(self.norm, self.dtype)(y, train))
        y = Norm(self.norm, self.dtype)(conv(self.channels)(y), train)
        if self.stride != 1 or x.shape[-1] != self.channels:
            x = conv(self.channels, strides=self.stride)(x)
        return nn.relu(x + y)


class Mlp(nn.Module):
    """Dense -> Norm -> ReLU per hidden size, then a Dense output layer computed in float32
    (outputs are logits or latents that feed supports and losses)."""

    sizes: tuple[int, ...]
    norm: str
    out: int
    zero_init_out: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: chex.Array, train: bool) -> chex.Array:
        for size in self.sizes:
            x = nn.relu(Norm(self.norm, self.dtype)(nn.Dense(size, dtype=self.dtype)(x), train))
        init = nn.initializers.zeros if self.zero_init_out else nn.initializers.lecun_normal()
        return nn.Dense(self.out, kernel_init=init, dtype=jnp.float32)(x)


class EfficientZeroNet(nn.Module):
    """All EfficientZero networks; see the module docstring for the four methods."""

    cfg: ModelConfig
    num_actions: int
    image: bool
    """True for uint8 frame stacks ``[S, H, W, C]``, False for float vectors ``[D]``."""
    downsample: bool = True
    """Image trunk: shrink frames 16x to a spatial latent (EfficientZero's), or keep their size
    in the encoder and make a vector latent (small frames)."""

    @property
    def spatial(self) -> bool:
        """Whether latents are feature maps ``[H', W', C]`` (else vectors ``[L]``)."""
        return self.image and self.downsample

    def setup(self) -> None:
        c = self.cfg
        dt = jnp.dtype(c.dtype)
        norm = functools.partial(Norm, c.norm, dt)
        block = functools.partial(ResBlock, norm=c.norm, dtype=dt)
        conv = functools.partial(nn.Conv, dtype=dt)
        dense = functools.partial(nn.Dense, dtype=dt)
        v_size, r_size = 2 * c.value_support + 1, 2 * c.reward_support + 1
        if self.image:
            if self.downsample:
                self.down = [
                    conv(c.channels // 2, (3, 3), strides=2, padding="SAME", use_bias=False),
                    norm(),
                    block(c.channels // 2),
                    block(c.channels, stride=2),
                    block(c.channels),
                    block(c.channels),
                ]
            else:
                self.stem = [conv(c.channels, (3, 3), padding="SAME", use_bias=False), norm()]
            self.repr_blocks = [block(c.channels) for _ in range(c.num_blocks)]
        if self.spatial:
            self.dyn_conv = conv(c.channels, (3, 3), padding="SAME", use_bias=False)
            self.dyn_norm = norm()
            self.dyn_blocks = [block(c.channels) for _ in range(c.num_blocks)]
            self.pred_blocks = [block(c.channels) for _ in range(c.num_blocks)]
            self.reduce_prefix = conv(c.reduced_channels, (1, 1))
            self.reduce_value = conv(c.reduced_channels, (1, 1))
            self.reduce_policy = conv(c.reduced_channels, (1, 1))
            self.reduce_norms = [norm() for _ in range(3)]
        else:
            if not self.image:
                self.repr_mlp = Mlp(c.hidden, c.norm, c.latent_dim, dtype=dt)
            else:
                self.repr_dense = dense(c.latent_dim)
            self.dyn_mlp = Mlp(c.hidden, c.norm, c.latent_dim, dtype=dt)
        self.lstm = nn.OptimizedLSTMCell(c.lstm_hidden, dtype=dt)
        self.lstm_norm = norm()
        head = functools.partial(Mlp, c.head_hidden, c.norm, zero_init_out=True, dtype=dt)
        self.prefix_head = head(r_size)
        self.value_head = head(v_size)
        self.policy_head = head(self.num_actions)
        self.projection = [
            dense(c.proj_hidden),
            norm(),
            dense(c.proj_hidden),
            norm(),
            nn.Dense(c.proj_out),
            Norm(c.norm),
        ]
        self.predictor = [dense(c.pred_hidden), norm(), nn.Dense(c.proj_out)]

    def _latent(self, x: chex.Array) -> chex.Array:
        x = normalize_latent(x) if self.cfg.state_norm else x
        return x.astype(self.cfg.dtype)

    # -- h ---------------------------------------------------------------------------------
    def represent(self, obs: chex.Array, train: bool = False) -> chex.Array:
        """obs ``[B, S, H, W, C]`` or ``[B, D]`` -> latent ``[B, H/16, W/16, C]`` (down-sampled
        frames) or ``[B, L]`` (vectors, small frames).

        Image stacks are uint8 (scaled by 1/255 here) or floats already in [0, 1] (augmented).
        """
        if self.image:
            b, s, hh, ww, ch = obs.shape
            x = jnp.transpose(obs, (0, 2, 3, 1, 4)).reshape(b, hh, ww, s * ch)
            x = x.astype(jnp.float32) / 255.0 if obs.dtype == jnp.uint8 else x
            x = x.astype(self.cfg.dtype)
            if self.downsample:
                conv, norm, *blocks = self.down
                x = nn.relu(norm(conv(x), train))
                x = blocks[0](x, train)
                x = blocks[1](x, train)
                x = blocks[2](x, train)
                x = nn.avg_pool(x, (3, 3), strides=(2, 2), padding="SAME")
                x = blocks[3](x, train)
                x = nn.avg_pool(x, (3, 3), strides=(2, 2), padding="SAME")
            else:
                conv, norm = self.stem
                x = nn.relu(norm(conv(x), train))
            for block in self.repr_blocks:
                x = block(x, train)
            if not self.spatial:
                x = self.repr_dense(x.reshape(b, -1))
        else:
            x = self.repr_mlp(obs.astype(jnp.float32), train)
        return self._latent(x)

    # -- g ---------------------------------------------------------------------------------
    def dynamics(
        self, latent: chex.Array, lstm: LSTMState, action: chex.Array, train: bool = False
    ) -> tuple[chex.Array, LSTMState, chex.Array]:
        """(latent, lstm (c, h), action ``[B]``) -> (next latent, next lstm, prefix logits).

        The LSTM state stays float32 whatever ``model.dtype`` is.
        """
        if self.spatial:
            plane = jnp.broadcast_to(
                (action.astype(latent.dtype) / self.num_actions)[:, None, None, None],
                latent.shape[:-1] + (1,),
            )
            x = self.dyn_conv(jnp.concatenate([latent, plane], axis=-1))
            x = nn.relu(self.dyn_norm(x, train) + latent)
            for block in self.dyn_blocks:
                x = block(x, train)
            feat = nn.relu(self.reduce_norms[0](self.reduce_prefix(x), train))
            feat = feat.reshape(feat.shape[0], -1)
        else:
            onehot = jax.nn.one_hot(action, self.num_actions, dtype=latent.dtype)
            x = latent + self.dyn_mlp(jnp.concatenate([latent, onehot], axis=-1), train)
            feat = x
        next_latent = self._latent(x)
        (c, h), out = self.lstm(lstm, feat)
        lstm = (c.astype(jnp.float32), h.astype(jnp.float32))
        out = nn.relu(self.lstm_norm(out, train))
        return next_latent, lstm, self.prefix_head(out, train)

    # -- f ---------------------------------------------------------------------------------
    def predict(self, latent: chex.Array, train: bool = False) -> tuple[chex.Array, chex.Array]:
        """latent -> (policy logits ``[B, A]``, value logits ``[B, 2 * value_support + 1]``)."""
        if self.spatial:
            x = latent
            for block in self.pred_blocks:
                x = block(x, train)
            v = nn.relu(self.reduce_norms[1](self.reduce_value(x), train))
            p = nn.relu(self.reduce_norms[2](self.reduce_policy(x), train))
            v, p = v.reshape(v.shape[0], -1), p.reshape(p.shape[0], -1)
        else:
            v = p = latent
        return self.policy_head(p, train), self.value_head(v, train)

    # -- consistency branch ----------------------------------------------------------------
    def project(self, latent: chex.Array, predictor: bool, train: bool = False) -> chex.Array:
        """SimSiam projection of a latent, followed by the predictor head if ``predictor``."""
        x = latent.reshape(latent.shape[0], -1)
        d1, n1, d2, n2, d3, n3 = self.projection
        x = nn.relu(n1(d1(x), train))
        x = nn.relu(n2(d2(x), train))
        x = n3(d3(x), train)
        if predictor:
            p1, pn, p2 = self.predictor
            x = p2(nn.relu(pn(p1(x), train)))
        return x

    def initial_lstm(self, batch: int) -> LSTMState:
        zeros = jnp.zeros((batch, self.cfg.lstm_hidden), jnp.float32)
        return zeros, zeros

    def __call__(self, obs: chex.Array, action: chex.Array, train: bool = False) -> Any:
        """Touches every parameter (used by ``init``)."""
        latent = self.represent(obs, train)
        policy, value = self.predict(latent, train)
        nxt, _, prefix = self.dynamics(latent, self.initial_lstm(obs.shape[0]), action, train)
        return policy, value, prefix, self.project(nxt, True, train), self.project(latent, False)


def make_network(cfg: ModelConfig, obs_shape: tuple[int, ...], num_actions: int):
    """Pick the trunk from the observation shape (``model.kind='auto'``) and build the net."""
    from dreamer.core.errors import ObservationSpaceError

    image = len(obs_shape) == 4
    if cfg.kind == "conv" and not image or cfg.kind == "mlp" and len(obs_shape) != 1:
        raise ObservationSpaceError(
            f"model.kind={cfg.kind!r} cannot take observations of shape {obs_shape}; "
            "use model.kind=auto."
        )
    if len(obs_shape) not in (1, 4):
        raise ObservationSpaceError(
            f"observations of shape {obs_shape} are not supported: the networks take flat "
            "vectors [D] or frame stacks [S, H, W, C]. Wrap the environment (e.g. gymnasium's "
            "FlattenObservation or FrameStackObservation) to give one of these."
        )
    downsample = image and cfg.downsamples(obs_shape[1:])
    return EfficientZeroNet(cfg, num_actions, image, downsample)
