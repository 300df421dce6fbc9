import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dreamer.agents.efficientzero.config import ModelConfig
from dreamer.agents.efficientzero.networks import make_network
from dreamer.core.errors import ObservationSpaceError

TINY_MLP = ModelConfig(
    kind="auto",
    latent_dim=8,
    hidden=(16,),
    head_hidden=(8,),
    lstm_hidden=8,
    value_support=5,
    reward_support=3,
    norm="layer",
    proj_hidden=16,
    proj_out=16,
    pred_hidden=8,
    state_norm=True,
)
TINY_CONV = ModelConfig(
    kind="auto",
    channels=8,
    num_blocks=1,
    reduced_channels=2,
    head_hidden=(8,),
    lstm_hidden=8,
    value_support=5,
    reward_support=3,
    norm="batch",
    proj_hidden=16,
    proj_out=16,
    pred_hidden=8,
    state_norm=True,
)


def _init(cfg, obs_shape, dtype, batch=3):
    net = make_network(cfg, obs_shape, num_actions=4)
    obs = jnp.asarray(np.random.default_rng(0).integers(0, 255, (batch,) + obs_shape), dtype)
    variables = net.init(jax.random.PRNGKey(0), obs, jnp.zeros(batch, jnp.int32))
    return net, variables, obs


@pytest.mark.parametrize(
    "cfg, obs_shape, dtype, latent_shape",
    [
        (TINY_MLP, (5,), jnp.float32, (8,)),
        (TINY_CONV, (4, 96, 96, 3), jnp.uint8, (6, 6, 8)),
        (TINY_CONV, (1, 10, 10, 4), jnp.uint8, (64,)),  # MinAtar: full-size encoder, vector
        (TINY_CONV, (2, 16, 12, 3), jnp.uint8, (64,)),  # at the size limit
        (TINY_CONV, (1, 17, 17, 3), jnp.uint8, (2, 2, 8)),  # above it: EfficientZero's 16x
    ],
)
def test_shapes_and_dtypes(cfg, obs_shape, dtype, latent_shape):
    net, variables, obs = _init(cfg, obs_shape, dtype)
    latent = net.apply(variables, obs, method="represent")
    assert latent.shape == (3,) + latent_shape and latent.dtype == jnp.float32
    assert float(latent.min()) >= 0.0 and float(latent.max()) <= 1.0 + 1e-6
    policy, value = net.apply(variables, latent, method="predict")
    assert policy.shape == (3, 4) and value.shape == (3, 11)
    lstm = net.apply(variables, 3, method="initial_lstm")
    nxt, lstm2, prefix = net.apply(variables, latent, lstm, jnp.array([0, 1, 3]), method="dynamics")
    assert nxt.shape == latent.shape and prefix.shape == (3, 7)
    assert lstm2[0].shape == (3, 8)
    proj = net.apply(variables, latent, predictor=True, method="project")
    assert proj.shape == (3, 16)


@pytest.mark.parametrize(
    "downsample, latent_shape", [("none", (64,)), ("efficientzero", (2, 2, 8))]
)
def test_downsampling_can_be_chosen_over_the_frame_size(downsample, latent_shape):
    cfg = dataclasses.replace(TINY_CONV, downsample=downsample)
    small = dataclasses.replace(TINY_CONV, downsample="efficientzero")
    net, variables, obs = _init(cfg, (1, 32, 32, 1), jnp.uint8, batch=2)
    assert net.apply(variables, obs, method="represent").shape == (2,) + latent_shape
    net, variables, obs = _init(small, (1, 8, 8, 1), jnp.uint8, batch=2)  # 8 -> 1 pixel
    assert net.apply(variables, obs, method="represent").shape == (2, 1, 1, 8)


def test_state_norm_off_leaves_latents_unscaled_and_bfloat16_computes_in_bfloat16():
    raw = dataclasses.replace(TINY_CONV, state_norm=False)
    net, variables, obs = _init(raw, (4, 96, 96, 3), jnp.uint8)
    latent = net.apply(variables, obs, method="represent")
    per_example_max = latent.reshape(3, -1).max(axis=1)
    assert not np.allclose(per_example_max, 1.0, atol=1e-3)  # not min-max scaled
    half = dataclasses.replace(TINY_CONV, dtype="bfloat16")
    net, variables, obs = _init(half, (4, 96, 96, 3), jnp.uint8)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))
    latent = net.apply(variables, obs, method="represent")
    assert latent.dtype == jnp.bfloat16
    policy, value = net.apply(variables, latent, method="predict")
    assert policy.dtype == value.dtype == jnp.float32
    lstm = net.apply(variables, 3, method="initial_lstm")
    nxt, (c, h), prefix = net.apply(variables, latent, lstm, jnp.arange(3), method="dynamics")
    assert nxt.dtype == jnp.bfloat16 and c.dtype == h.dtype == prefix.dtype == jnp.float32
    full, variables32, _ = _init(TINY_CONV, (4, 96, 96, 3), jnp.uint8)
    p32, v32 = full.apply(
        variables32, full.apply(variables32, obs, method="represent"), method="predict"
    )
    p16, v16 = net.apply(
        variables32, net.apply(variables32, obs, method="represent"), method="predict"
    )
    np.testing.assert_allclose(p16, p32, atol=0.05)  # same parameters, bf16 rounding only


def test_same_key_same_output():
    """Two independent inits with one key agree, in parameters and outputs; another key
    gives other parameters."""
    net1, v1, obs = _init(TINY_MLP, (5,), jnp.float32)
    net2, v2, _ = _init(TINY_MLP, (5,), jnp.float32)
    assert v1 is not v2
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), v1, v2)))
    moved = jax.tree.map(lambda x: x + 0.1, v1)  # non-zero heads, so the outputs say something
    out1 = net1.apply(moved, obs, jnp.array([0, 1, 2]))
    out2 = net2.apply(jax.tree.map(lambda x: x + 0.1, v2), obs, jnp.array([0, 1, 2]))
    for a, b in zip(jax.tree.leaves(out1), jax.tree.leaves(out2), strict=True):
        np.testing.assert_array_equal(a, b)
    other = net1.init(jax.random.PRNGKey(1), obs, jnp.zeros(3, jnp.int32))
    differs = jax.tree.map(lambda a, b: not bool(jnp.array_equal(a, b)), v1, other)
    assert any(jax.tree.leaves(differs))


def test_heads_start_at_zero_value():
    net, variables, obs = _init(TINY_MLP, (5,), jnp.float32)
    latent = net.apply(variables, obs, method="represent")
    policy, value = net.apply(variables, latent, method="predict")
    np.testing.assert_allclose(policy, 0.0)  # zero-initialised output layers (EfficientZero)
    np.testing.assert_allclose(value, 0.0)


def test_finite_gradients_for_every_parameter():
    """Every parameter gets a finite, non-zero gradient: a parameter cut off from the outputs
    (zero gradient) fails too. The zero-initialised output layers are moved first, otherwise
    the layers before them get no gradient by construction."""
    net, variables, obs = _init(TINY_CONV, (4, 96, 96, 3), jnp.uint8, batch=2)
    keys = iter(jax.random.split(jax.random.PRNGKey(5), len(jax.tree.leaves(variables))))
    params = jax.tree.map(
        lambda x: x + 0.05 * jax.random.normal(next(keys), x.shape), variables["params"]
    )

    lstm = tuple(jax.random.normal(jax.random.PRNGKey(k), (2, 8)) for k in (6, 7))

    def everything(module, obs):  # as __call__, from a non-zero LSTM state (else the
        latent = module.represent(obs, True)  # forget gate and recurrent kernels get none)
        nxt, new_lstm, prefix = module.dynamics(latent, lstm, jnp.array([1, 2]), True)
        outs = module.predict(latent, True) + (prefix, *new_lstm)
        return outs + (module.project(nxt, True, True), module.project(latent, False, True))

    def loss(params):
        out, _ = net.apply(
            {"params": params, "batch_stats": variables["batch_stats"]},
            obs,
            method=everything,
            mutable=["batch_stats"],
        )
        return sum(jnp.sum(jnp.sin(o)) for o in out)

    grads = jax.jit(jax.grad(loss))(params)  # one compiled program, not op-by-op
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert bool(jnp.isfinite(g).all()), path
        assert float(jnp.abs(g).max()) > 0.0, path


def test_batchnorm_inference_is_per_example():
    """In search (train=False) an example's output must not depend on the rest of the batch."""
    net, variables, obs = _init(TINY_CONV, (4, 96, 96, 3), jnp.uint8, batch=3)
    alone = net.apply(variables, obs[:1], method="represent")
    together = net.apply(variables, obs, method="represent")
    np.testing.assert_allclose(alone[0], together[0], atol=1e-5)
    # Training mode uses batch statistics and updates the running averages.
    _, updates = net.apply(variables, obs, train=True, mutable=["batch_stats"], method="represent")
    before = jax.tree.leaves(variables["batch_stats"])
    after = jax.tree.leaves(updates["batch_stats"])
    assert any(not jnp.allclose(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4, 5, 6)])
def test_unsupported_observation_shape_is_a_clear_error(shape):
    with pytest.raises(ObservationSpaceError, match="not supported"):
        make_network(TINY_MLP, shape, num_actions=2)
