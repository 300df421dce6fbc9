"""Augmentation (EfficientZero: random shift with replicate padding, then intensity)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dreamer.agents.efficientzero import learner as learner_module
from dreamer.agents.efficientzero.augment import augment, intensity
from dreamer.agents.efficientzero.config import apply_overrides
from dreamer.agents.efficientzero.learner import make_learner
from dreamer.agents.efficientzero.networks import make_network
from dreamer.agents.efficientzero.replay import Replay
from dreamer.core.shift import random_shift
from experiments.efficientzero import debug

H = W = 16


def pattern(batch, frames=3):
    """Pixel (i, j) of frame f of example b holds b * 10^4 + f * 10^3 + 30 i + j (distinct)."""
    b, f, i, j = np.meshgrid(
        np.arange(batch), np.arange(frames), np.arange(H), np.arange(W), indexing="ij"
    )
    return (b * 10_000 + f * 1_000 + 30 * i + j).astype(np.float32)[..., None]


def test_random_shift_crops_a_replicate_padded_image_at_most_pad_pixels_away():
    images = pattern(200)
    out = np.asarray(random_shift(jax.random.PRNGKey(0), jnp.asarray(images), pad=4))
    assert out.shape == images.shape
    shifts = set()
    for b in range(200):
        # The centre pixel (8, 8) moved by (dy, dx); with pad 4 the pixel is never an edge copy.
        value = out[b, 0, 8, 8, 0] - b * 10_000
        dy, dx = int(value // 30) - 8, int(value % 30) - 8
        assert -4 <= dy <= 4 and -4 <= dx <= 4
        shifts.add((dy, dx))
        expected = np.pad(images[b], ((0, 0), (4, 4), (4, 4), (0, 0)), mode="edge")
        expected = expected[:, 4 + dy : 4 + dy + H, 4 + dx : 4 + dx + W]
        np.testing.assert_array_equal(out[b], expected)  # every frame of b: the same shift
    assert len(shifts) > 40  # offsets vary across the batch (81 possible)
    assert {d for s in shifts for d in s} == set(range(-4, 5))


def test_intensity_scales_each_example_by_one_clipped_gaussian_factor():
    images = jnp.ones((4000, 2, 3, 3, 1))
    out = np.asarray(intensity(jax.random.PRNGKey(1), images, scale=0.05))
    factors = out[:, 0, 0, 0, 0]
    assert (out == factors[:, None, None, None, None]).all()  # one factor per example
    assert factors.min() >= 0.9 - 1e-6 and factors.max() <= 1.1 + 1e-6  # 1 +- 0.05 * 2
    assert factors.mean() == pytest.approx(1.0, abs=0.005)
    assert factors.std() == pytest.approx(0.05 * 0.9785, rel=0.05)  # std of N(0,1) cut at 2
    # each factor is 1 + scale * z for the example's own draw z (not 1 - scale * z)
    z = np.clip(np.asarray(jax.random.normal(jax.random.PRNGKey(1), (4000,))), -2.0, 2.0)
    np.testing.assert_allclose(factors, 1.0 + 0.05 * z, rtol=1e-6)


def test_random_shift_moves_every_channel_alike():
    frames = np.concatenate([pattern(6), 2 * pattern(6) + 1, -pattern(6)], axis=-1)
    key = jax.random.PRNGKey(2)
    out = np.asarray(random_shift(key, jnp.asarray(frames), pad=4))
    for c in range(3):  # the channel axis is not padded: channel c is channel c shifted
        alone = random_shift(key, jnp.asarray(frames[..., c : c + 1]), pad=4)
        np.testing.assert_array_equal(out[..., c : c + 1], alone)


def test_augment_is_a_function_of_the_key_and_scales_uint8_to_unit_range():
    frames = jnp.asarray(np.random.default_rng(0).integers(0, 256, (8, 4, H, W, 3)), jnp.uint8)
    names = ("shift", "intensity")
    a = augment(jax.random.PRNGKey(3), frames, names, pad=4, scale=0.05)
    b = augment(jax.random.PRNGKey(3), frames, names, pad=4, scale=0.05)
    c = augment(jax.random.PRNGKey(4), frames, names, pad=4, scale=0.05)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == jnp.float32 and float(a.max()) <= 1.1 and float(a.min()) >= 0.0
    none = augment(jax.random.PRNGKey(3), frames, (), pad=4, scale=0.05)
    np.testing.assert_allclose(none, np.asarray(frames) / 255.0)


def test_augment_applies_each_name_in_order_with_a_key_of_its_own():
    frames = jnp.asarray(np.random.default_rng(1).integers(0, 256, (4, 2, H, W, 1)), jnp.uint8)
    names = ("intensity", "shift", "intensity")
    out = augment(jax.random.PRNGKey(5), frames, names, pad=2, scale=0.1)
    k0, k1, k2 = jax.random.split(jax.random.PRNGKey(5), 3)
    x = intensity(k0, frames.astype(jnp.float32) / 255.0, 0.1)
    x = intensity(k2, random_shift(k1, x, 2), 0.1)
    np.testing.assert_allclose(out, x, rtol=1e-6)


def test_learner_augments_the_step0_input_and_the_consistency_targets_only(monkeypatch):
    """As EfficientZero's ``update_weights``: ``obs_batch`` (the first S frames) and
    ``obs_target_batch`` (frames 1 .. S+K-1) are augmented, each with its own draw; the
    targets (bootstrap values, reanalysis) see raw observations."""
    seen = []
    real = learner_module.augment

    def recording(key, frames, names, **kw):
        seen.append((frames.shape, tuple(names)))
        return real(key, frames, names, **kw)

    monkeypatch.setattr(learner_module, "augment", recording)
    cfg = apply_overrides(
        debug(),
        [
            "model.kind=conv",
            "model.channels=4",
            "model.reduced_channels=2",
            "replay.batch_size=4",
            "replay.reanalyze_mode=per_batch",
            "replay.reanalyze_fraction=0",
        ],
    )
    k, s = cfg.replay.unroll_steps, 2
    net = make_network(cfg.model, (s, H, W, 1), 2)
    replay = Replay(
        cfg.replay,
        num_envs=1,
        frame_shape=(H, W, 1),
        frame_dtype=np.uint8,
        num_actions=2,
        frame_stack=s,
    )
    learner = make_learner(cfg, net, replay)
    rstate = replay.init()
    rng = np.random.default_rng(0)
    for _ in range(20):
        obs = rng.integers(0, 256, (1, s, H, W, 1)).astype(np.uint8)
        rstate = replay.add(
            rstate,
            obs,
            np.zeros(1),
            np.zeros(1),
            np.zeros(1, bool),
            np.zeros(1, bool),
            np.full((1, 2), 0.5),
            np.zeros(1),
        )
    batch, _ = replay.sample(rstate, jax.random.PRNGKey(0), beta=1.0)
    state = learner.init(jax.random.PRNGKey(0), jnp.zeros((1, s, H, W, 1), jnp.uint8))
    jax.jit(learner.update)(state, batch)  # tracing calls augment once per group
    assert seen == [
        ((4, s, H, W, 1), ("shift", "intensity")),
        ((4, s + k - 1, H, W, 1), ("shift", "intensity")),
    ]
    seen.clear()
    jax.jit(learner.targets)(state, batch, jax.random.PRNGKey(1))
    assert seen == []


def test_random_shift_offsets_are_uniform_over_the_2_pad_plus_1_crops():
    """Each of the (2 pad + 1)^2 crops is equally likely (an offset range one too wide would
    clamp onto the last crop and double its share)."""
    pad, b = 1, 4000
    ramp = jnp.arange(36, dtype=jnp.float32).reshape(1, 1, 6, 6, 1) + 100.0
    out = random_shift(jax.random.PRNGKey(4), jnp.tile(ramp, (b, 1, 1, 1, 1)), pad)
    # The centre pixel (2, 2) of the 6x6 ramp comes from row 1 + dy, column 1 + dx.
    source = np.asarray(out[:, 0, 2, 2, 0]) - 100.0
    dy, dx = source // 6 - 1, source % 6 - 1
    counts = np.bincount((dy * 3 + dx).astype(int), minlength=9)
    np.testing.assert_allclose(counts / b, np.full(9, 1 / 9), atol=0.02)
