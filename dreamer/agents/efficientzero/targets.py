"""Training targets from a replay ``Batch`` (pure, jittable; time-indexed as in rlax).

For each sampled time t and unroll step k = 0..K:

- value  z_{t+k} = sum_{i<m} gamma^i r_{t+k+i} + gamma^m v'(o_{t+k+m}),
  m = the sample's horizon n_b (EfficientZero's off-policy correction makes older data use a
  shorter n_b), cut at the episode end (no bootstrap past a terminal) or at the newest stored
  observation of an ongoing episode (bootstrap from it); v' is the target network's value.
  A truncated (cut) episode bootstraps from its last stored observation o_T and leaves out
  r_T: the observation after a cut is not stored, and v'(o_T) estimates r_T + gamma v(o_{T+1})
  already, so the target is the same return over a shorter horizon.
  With ``replay.value_target="search"`` the value target is instead the root value of the
  target network's search at o_{t+k} (0 past a terminal): a return imagined over the model;
  ``"mixed"`` picks one of the two per sample (``mixed_value_targets``, EfficientZero-V2);
- value prefix (k = 1..K)  P_{t+k} = sum of r_{t+j} from the start of the LSTM block to k-1;
- policy: the stored search policy, or for a ``reanalyze_fraction`` of the batch a fresh
  search with the target network (MuZero Reanalyse / EfficientZero).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def stack_at(frames: chex.Array, k: chex.Array, frame_stack: int) -> chex.Array:
    """Observations at window positions ``k`` (``[B]`` or ``[B, M]``) of ``frames [B, W, ...]``.

    Window position k holds the stack ``frames[k : k + S]``. Returns ``[B, S, *frame]`` (or
    ``[B * M, S, *frame]``) for stacked frames, without the stack axis when ``S == 1``.
    """

    def one(f: chex.Array, kk: chex.Array) -> chex.Array:
        window = jax.lax.dynamic_slice_in_dim(f, kk, frame_stack, axis=0)
        return window if frame_stack > 1 else window[0]

    if k.ndim == 1:
        return jax.vmap(one)(frames, k)
    out = jax.vmap(lambda f, ks: jax.vmap(lambda kk: one(f, kk))(ks))(frames, k)
    return out.reshape((-1,) + out.shape[2:])


def bootstrap_offsets(
    last_offset: chex.Array, terminal: chex.Array, td_steps: chex.Array, unroll_steps: int
) -> tuple[chex.Array, chex.Array]:
    """Bootstrap position b_k ``[B, K+1]`` and whether it is bootstrapped (not terminal).

    Past a terminal the observation is absorbing with value 0; in an ongoing episode the
    horizon is cut at the newest stored observation.
    """
    k = jnp.arange(unroll_steps + 1)[None, :]
    want = k + td_steps[:, None]
    last = last_offset[:, None]
    b = jnp.where(terminal[:, None], jnp.minimum(want, last + 1), jnp.minimum(want, last))
    b = jnp.maximum(b, k)
    bootstrapped = ~terminal[:, None] | (want <= last)
    return b, bootstrapped


def n_step_values(
    r_t: chex.Array,
    v_boot: chex.Array,
    b: chex.Array,
    bootstrapped: chex.Array,
    discount: float,
) -> chex.Array:
    """z_k = sum_{k<=i<b_k} gamma^(i-k) r_i + [bootstrapped] gamma^(b_k-k) v_boot_k.

    ``r_t`` ``[B, T]`` rewards from t, ``v_boot`` ``[B, K+1]`` values at b_k.
    """
    chex.assert_rank([r_t, v_boot, b], [2, 2, 2])
    num_k = v_boot.shape[1]
    i = jnp.arange(r_t.shape[1])[None, None, :]
    k = jnp.arange(num_k)[None, :, None]
    in_window = (i >= k) & (i < b[:, :, None])
    powers = jnp.where(in_window, discount ** jnp.maximum(i - k, 0).astype(r_t.dtype), 0.0)
    rewards = jnp.sum(powers * r_t[:, None, :], axis=-1)
    tail = discount ** (b - jnp.arange(num_k)[None, :]).astype(r_t.dtype)
    return rewards + jnp.where(bootstrapped, tail * v_boot, 0.0)


def value_prefix_targets(r_t: chex.Array, unroll_steps: int, lstm_horizon: int) -> chex.Array:
    """P_k for k = 1..K ``[B, K]``: rewards summed from the LSTM block start to step k-1."""
    k = jnp.arange(1, unroll_steps + 1)[:, None]
    i = jnp.arange(unroll_steps)[None, :]
    block_start = ((k - 1) // lstm_horizon) * lstm_horizon
    mask = (i >= block_start) & (i <= k - 1)
    return r_t[:, :unroll_steps] @ mask.T.astype(r_t.dtype)


def step_masks(last_offset: chex.Array, terminal: chex.Array, unroll_steps: int) -> chex.Array:
    """``[B, K+1]`` True where o_{t+k} is a real observation (not past a terminal)."""
    k = jnp.arange(unroll_steps + 1)[None, :]
    return ~terminal[:, None] | (k <= last_offset[:, None])


def searched_value_targets(root_value: chex.Array, mask: chex.Array) -> chex.Array:
    """z_k = the search's root value at o_{t+k} where it is a real observation, 0 past a
    terminal. ``root_value`` and ``mask`` ``[B, K+1]``."""
    chex.assert_equal_shape([root_value, mask])
    return jnp.where(mask, root_value, 0.0)


def mixed_value_targets(
    n_step: chex.Array,
    searched: chex.Array,
    age: chex.Array,
    step: chex.Numeric,
    *,
    start_update: int,
    fresh_transitions: int,
) -> chex.Array:
    """EfficientZero-V2's mixed value target ``[B, K+1]``: the n-step target ``n_step`` while
    fewer than ``start_update`` updates are made (``step``), afterwards the n-step target for a
    sample among the ``fresh_transitions`` newest (``age`` ``[B]``, transitions added since it
    was, < ``fresh_transitions``) and the search value ``searched`` for an older one.

    EfficientZero-V2 (``ez/agents/base.py``, ``update_weights``) takes the search value where
    ``idx <= collected_transitions - mixed_value_threshold``, idx the sample's 0-based
    transition index: the age ``collected_transitions - idx`` is at least the threshold.
    """
    chex.assert_equal_shape([n_step, searched])
    chex.assert_shape(age, n_step.shape[:1])
    use_n_step = (step < start_update) | (age < fresh_transitions)
    return jnp.where(use_n_step[:, None], n_step, searched)
