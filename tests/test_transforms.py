import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dreamer.agents.efficientzero.transforms import h, h_inv, scalar_to_support, support_to_scalar


@pytest.mark.parametrize("jit", [False, True])
def test_h_inverse_round_trip(jit):
    x = jnp.array([-1e4, -300.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 1.0, 37.0, 1e4])
    f = jax.jit(lambda v: h_inv(h(v))) if jit else (lambda v: h_inv(h(v)))
    np.testing.assert_allclose(f(x), x, rtol=1e-4, atol=1e-4)


def test_h_known_values():
    np.testing.assert_allclose(h(jnp.array([0.0, 3.0, -8.0])), [0.0, 1.003, -2.008], atol=1e-6)


def test_support_two_hot_and_round_trip():
    x = jnp.array([0.0, 3.0, -8.0, 12.34])
    probs = scalar_to_support(x, support=10)
    assert probs.shape == (4, 21)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    # h(3) = 1.003 -> 99.7% on bin +1, 0.3% on bin +2.
    np.testing.assert_allclose(probs[1, 11], 0.997, atol=1e-5)
    np.testing.assert_allclose(probs[1, 12], 0.003, atol=1e-5)
    # support_to_scalar of exact log-probabilities inverts the projection.
    back = support_to_scalar(jnp.log(jnp.maximum(probs, 1e-30)), support=10)
    np.testing.assert_allclose(back, x, rtol=1e-3, atol=1e-3)


def test_support_clips_at_bounds():
    support = 5
    big = h_inv(jnp.array(float(support)))
    probs = scalar_to_support(jnp.array([1e6, -1e6, big]), support)
    assert probs[0, -1] == pytest.approx(1.0)
    assert probs[1, 0] == pytest.approx(1.0)
    assert probs[2, -1] == pytest.approx(1.0, abs=1e-4)
    assert not jnp.isnan(probs).any()


def test_support_to_scalar_reads_the_last_axis_of_any_batch_shape():
    """Values of a ``[B, K, bins]`` unroll: each row its own expectation."""
    x = jnp.array([[0.0, 3.0, -8.0], [12.34, -0.5, 40.0]])
    logits = jnp.log(jnp.maximum(scalar_to_support(x, support=10), 1e-30))
    assert logits.shape == (2, 3, 21)
    back = support_to_scalar(logits, support=10)
    np.testing.assert_allclose(back, x, rtol=1e-3, atol=1e-3)
    one_row = support_to_scalar(logits[1, 2], support=10)
    np.testing.assert_allclose(one_row, back[1, 2], rtol=1e-6)
    # unnormalised logits: the softmax over the bins, not over another axis
    np.testing.assert_allclose(support_to_scalar(logits + 7.0, support=10), back, rtol=1e-5)
