"""Dreaming: imagined rollouts, their targets, the stop-gradient, the gate, the compute."""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dreamer.agents.efficientzero import compute
from dreamer.agents.efficientzero.config import ConfigError, apply_overrides
from dreamer.agents.efficientzero.dreaming import dream_starts, make_dreaming
from dreamer.agents.efficientzero.networks import make_network
from experiments.efficientzero import debug
from tests.test_learner import OVERRIDES, build
from tests.test_learner_values import perturbed


class ToyNet:
    """A hand-made model over 3-dim latents: represent is the identity, action ``a`` adds
    ``e_a``, the prior puts all but e^-20 of its mass on action 1, values and rewards are 0."""

    num_actions = 3

    def __init__(self, cfg):
        self.value_bins = 2 * cfg.model.value_support + 1
        self.prefix_bins = 2 * cfg.model.reward_support + 1

    def apply(self, variables, *args, method, **kwargs):
        return getattr(self, method)(*args)

    def represent(self, obs):
        return obs.astype(jnp.float32)

    def initial_lstm(self, n):
        return jnp.zeros((n, 2)), jnp.zeros((n, 2))

    def dynamics(self, latent, lstm, action):
        zero = jax.nn.one_hot(jnp.full(latent.shape[0], self.prefix_bins // 2), self.prefix_bins)
        return latent + jax.nn.one_hot(action, 3), lstm, 50.0 * zero

    def predict(self, latent):
        n = latent.shape[0]
        policy = jnp.tile(jnp.array([0.0, 20.0, 0.0]), (n, 1))
        zero = jax.nn.one_hot(jnp.full(n, self.value_bins // 2), self.value_bins)
        return policy, 50.0 * zero


def dream_cfg(*overrides):
    return apply_overrides(
        debug(), [*OVERRIDES, "dream.ratio=1", "dream.horizon=2", "dream.start=0", *overrides]
    )


def test_imagined_rollouts_on_a_hand_made_model_give_known_latents_and_targets():
    cfg = dream_cfg("dream.simulations=4", "dream.search=gumbel")
    net = ToyNet(cfg)
    dreaming = make_dreaming(cfg, net)
    obs = jnp.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    tgt = dreaming.imagine({}, jax.random.PRNGKey(0), obs)
    np.testing.assert_array_equal(tgt.actions, [[1, 1], [1, 1]])  # the prior's action
    # The search sees zero rewards and values: its improved policy is the prior itself.
    prior = np.exp([0.0, 20.0, 0.0]) / np.exp([0.0, 20.0, 0.0]).sum()
    np.testing.assert_allclose(tgt.policies, np.broadcast_to(prior, (2, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(tgt.values, 0.0, atol=1e-5)
    np.testing.assert_array_equal(tgt.weights, 1.0)
    # The online replay of the same actions reaches obs + j * e_1.
    latents, _ = _replayed(dreaming, net, obs, tgt)
    np.testing.assert_allclose(latents[1], obs + np.array([0.0, 2.0, 0.0]))


def _replayed(dreaming, net, obs, tgt):
    seen = []

    def apply(method, latent):
        seen.append(np.asarray(latent))
        return net.predict(latent)

    per_rollout, metrics = dreaming.loss(apply, {}, obs, tgt)
    return seen, (per_rollout, metrics)


def test_disagreeing_imagined_states_give_no_target():
    cfg = dream_cfg("dream.max_disagreement=0.1", "dream.search=gumbel")

    class Optimist(ToyNet):
        """The value head is high at s_1 (one step of action 1) and 0 beyond it, where the
        search looks: at s_1 head and search disagree, at s_2 they agree on 0."""

        def predict(self, latent):
            policy, zero = super().predict(latent)
            high = jax.nn.one_hot(
                jnp.full(latent.shape[0], self.value_bins // 2 + 2), self.value_bins
            )
            first = (latent[:, 1] < 1.5)[:, None]
            return policy, jnp.where(first, 50.0 * high, zero)

    net = Optimist(cfg)
    dreaming = make_dreaming(cfg, net)
    tgt = dreaming.imagine({}, jax.random.PRNGKey(0), jnp.zeros((2, 3)))
    assert np.all(np.asarray(tgt.disagreement[:, 0]) > 0.1)
    np.testing.assert_array_equal(tgt.weights, [[0.0, 1.0], [0.0, 1.0]])
    _, (per_rollout, metrics) = _replayed(dreaming, net, jnp.zeros((2, 3)), tgt)
    assert float(metrics["charts/dream_kept"]) == 0.5
    # Only s_2 counts: the cross-entropy of its search policy against the prior.
    log_prior = np.asarray(jax.nn.log_softmax(jnp.array([0.0, 20.0, 0.0])))
    second = -np.sum(np.asarray(tgt.policies[:, 1]) * log_prior, axis=-1)
    np.testing.assert_allclose(per_rollout, cfg.dream.policy_weight * second, rtol=1e-5)
    full = tgt.replace(weights=jnp.ones_like(tgt.weights))
    _, (with_first, _) = _replayed(dreaming, net, jnp.zeros((2, 3)), full)
    assert np.all(np.asarray(with_first) > np.asarray(per_rollout))


def test_dream_value_targets_add_the_kept_cross_entropy_toward_the_searched_value():
    """``dream.value_weight > 0``: each kept imagined state adds ``value_weight`` times the
    cross-entropy of the value head against the two-hot of h(search value). The hand-made
    value head puts all but e^-50 of its mass on the bin of 0."""
    obs = jnp.zeros((2, 3))
    cfg = dream_cfg("dream.value_weight=0.5")
    net = ToyNet(cfg)
    tgt = make_dreaming(cfg, net).imagine({}, jax.random.PRNGKey(0), obs)
    tgt = tgt.replace(
        values=jnp.array([[0.0, 3.0], [8.0, 0.0]]), weights=jnp.array([[1.0, 1.0], [0.0, 1.0]])
    )
    _, (with_values, _) = _replayed(make_dreaming(cfg, net), net, obs, tgt)
    policy_cfg = dream_cfg("dream.value_weight=0")
    _, (policy_only, _) = _replayed(make_dreaming(policy_cfg, net), net, obs, tgt)

    support = cfg.model.value_support
    logits = np.where(np.arange(-support, support + 1) == 0, 50.0, 0.0)
    log_p = logits - np.log(np.exp(logits).sum())

    def cross_entropy(x):
        y = np.sign(x) * (np.sqrt(abs(x) + 1.0) - 1.0) + 0.001 * x  # EfficientZero's h
        low = int(np.floor(y))
        two_hot = np.zeros_like(log_p)
        two_hot[support + low] = 1.0 - (y - low)
        two_hot[support + low + 1] += y - low
        return -np.sum(two_hot * log_p)

    # h(3) = 1.003 and h(8) = 2.008 sit 50 nats from the head's bin; the second rollout's 8
    # is not kept (weight 0), so it adds only its kept zero.
    expected = 0.5 * np.array([cross_entropy(0.0) + cross_entropy(3.0), cross_entropy(0.0)])
    assert expected[0] == pytest.approx(25.0, rel=1e-3)
    np.testing.assert_allclose(
        np.asarray(with_values) - np.asarray(policy_only), expected, rtol=1e-5, atol=1e-4
    )


def test_no_gradient_reaches_the_representation_or_the_dynamics_from_dreams():
    cfg = dream_cfg()
    net = make_network(cfg.model, (4,), 2)
    obs = jax.random.normal(jax.random.PRNGKey(1), (6, 4))
    variables = net.init(jax.random.PRNGKey(0), obs, jnp.zeros(6, jnp.int32))
    dreaming = make_dreaming(cfg, net)
    tgt = dreaming.imagine(variables, jax.random.PRNGKey(2), obs)
    # At initialisation the search returns the prior itself (zero gradient): aim elsewhere.
    tgt = tgt.replace(
        policies=jax.nn.one_hot(jnp.zeros(tgt.actions.shape, jnp.int32), 2),
        weights=jnp.ones_like(tgt.weights),
    )

    def dream_loss(params):
        v = {**variables, "params": params}
        apply = lambda method, *a: net.apply(v, *a, method=method)  # noqa: E731
        return dreaming.loss(apply, v, obs, tgt)[0].sum()

    def head_loss(params):  # what the prediction heads alone reach
        latent = jax.lax.stop_gradient(net.apply(variables, obs, method="represent"))
        logits, values = net.apply({**variables, "params": params}, latent, method="predict")
        return logits.sum() + values.sum()

    grads = jax.grad(dream_loss)(variables["params"])
    heads = jax.grad(head_loss)(variables["params"])
    moved = lambda g: {
        k for k, sub in g.items() if any(np.any(x != 0) for x in jax.tree.leaves(sub))
    }  # noqa: E731
    assert moved(grads), "the dream loss trains nothing"
    assert moved(grads) <= moved(heads), moved(grads) - moved(heads)
    assert moved(grads) == {"policy_head"}  # value_weight=0: the policy head only
    for name in ("repr_mlp", "dyn_mlp", "lstm", "lstm_norm", "prefix_head"):
        assert name not in moved(grads)


@pytest.fixture(scope="module")
def plain():
    """The learner without dreams, one batch, and its update at step 0 and late."""
    _, replay, learner, state, rstate = build(*OVERRIDES)
    batch, _ = replay.sample(rstate, jax.random.PRNGKey(1), beta=0.4)
    update = jax.jit(learner.update)
    late = state.replace(step=jnp.asarray(10**6))
    return state, batch, update(state, batch), late, update(late, batch)[1]


def test_ratio_zero_and_an_idle_or_weightless_dream_are_the_learner_without_dreams(plain):
    state, batch, (base_state, base), _, _ = plain
    for extra in (["dream.start=1.0"], ["dream.start=0", "dream.policy_weight=0"]):
        _, _, learner, _, _ = build(*OVERRIDES, "dream.ratio=2", "dream.horizon=2", *extra)
        new_state, metrics = jax.jit(learner.update)(state, batch)
        for k in ("losses/total", "losses/value", "losses/policy", "charts/grad_norm"):
            np.testing.assert_allclose(metrics[k], base[k], rtol=1e-6, err_msg=k)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
            new_state.params,
            base_state.params,
        )
        active = float(metrics["charts/dream_active"])
        assert active == (0.0 if extra == ["dream.start=1.0"] else 1.0)


def test_an_active_dream_changes_the_update(plain):
    _, batch, _, late, base = plain
    _, _, learner, _, _ = build(*OVERRIDES, "dream.ratio=2", "dream.horizon=2")
    _, metrics = jax.jit(learner.update)(late, batch)
    assert float(metrics["charts/dream_active"]) == 1.0
    assert float(metrics["losses/dream_policy"]) > 0
    assert float(metrics["losses/total"]) > float(base["losses/total"])


def test_dream_settings_are_checked():
    with pytest.raises(ConfigError, match="dream.horizon"):
        apply_overrides(debug(), ["dream.ratio=1", "dream.horizon=9"])
    with pytest.raises(ConfigError, match="dream.start"):
        apply_overrides(debug(), ["dream.start=1.5"])
    cfg = apply_overrides(debug(), ["replay.batch_size=10", "dream.ratio=1.5", "dream.horizon=2"])
    assert dream_starts(cfg) == 8  # ceil(1.5 * 10 / 2): 16 imagined targets for 10 real


def test_compute_counters_add_up_and_match_the_run(tmp_path):
    from dreamer.loops.efficientzero import train

    cfg = apply_overrides(
        debug(),
        [
            "dream.ratio=1",
            "dream.horizon=2",
            "dream.start=0.5",
            "run.env_steps=160",
            "optim.target_update_every=5",
        ],
    )
    summary = train(cfg, tmp_path / "run", resume=False)
    spent = summary["compute"]
    assert spent["total"] == sum(spent[p] for p in compute.PARTS)
    counts, updates = summary["counts"], summary["updates"]
    unit = compute.per_update(cfg)
    sims = cfg.replay.reanalyze_simulations or cfg.search.num_simulations
    assert spent["acting"] == counts["iterations"] * cfg.env.num_envs * (
        1 + cfg.search.num_simulations
    )
    new_steps = counts["iterations"] * cfg.env.num_envs  # the target net's value of each
    assert spent["reanalysis"] == counts["refreshed_states"] * (1 + sims) + new_steps
    assert spent["gradient"] == updates * unit["gradient"]
    dreaming_updates = updates - cfg.dream_start_update
    assert 0 < dreaming_updates < updates
    assert spent["dreaming"] == dreaming_updates * unit["dreaming"]
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert float(rows[-1]["compute/total"]) == spent["total"]
    assert float(rows[0]["compute/dreaming"]) <= float(rows[-1]["compute/dreaming"])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["compute"] == spent


def test_the_control_spends_the_dream_compute_on_gradient_steps():
    from benchmarks.dreaming import variants

    cfg = apply_overrides(debug(), ["run.env_steps=2000"])
    found = {v["name"]: v for v in variants(cfg, [0.0, 4.0], controls=True)}
    assert set(found) == {"dream 0", "dream 4", "control 4"}
    dream = apply_overrides(cfg, found["dream 4"]["overrides"])
    control = apply_overrides(cfg, found["control 4"]["overrides"])
    assert control.dream.ratio == 0
    budget = lambda c: compute.spent(c, 2000, c.total_updates, 1)  # noqa: E731
    spent_dream, spent_control = budget(dream), budget(control)
    learning = spent_dream["gradient"] + spent_dream["dreaming"]
    # Over the run, the control's gradient steps cost what the dreamer's updates and dreams
    # cost (to the rounding of the update counts: 488 = round(487.5) updates for the dreamer).
    np.testing.assert_allclose(spent_control["gradient"], learning, rtol=0.005)
    assert spent_control["dreaming"] == 0 < spent_dream["dreaming"]


def test_the_minatar_dream_table_starts_from_the_minatar_mlp_suites_run():
    """MinAtar Breakout's ratio 0 trains what the ``minatar_mlp`` suite trains (preset,
    budget, flattened frames, evaluation), so the two tables share that run."""
    from benchmarks.dreaming import ENVS, variants
    from benchmarks.suites import SUITES, suite_runs
    from dreamer.core.seeds import parse_seeds
    from experiments import presets

    suite = SUITES["minatar_mlp"]
    (spec,) = {
        r.env: r
        for r in suite_runs(suite)
        if r.algo.algo == "efficientzero" and r.env.env_id == "gymnax:Breakout-MinAtar"
    }.values()
    env = ENVS["minatar-breakout"]
    assert (env.env_id, env.preset, env.steps) == (spec.env.env_id, spec.algo.preset, spec.budget)
    assert tuple(parse_seeds(env.seeds)) == suite.seeds

    def config(preset, env_id, steps, overrides):
        cfg = presets.get("efficientzero", preset)
        return apply_overrides(cfg, [f"env.id={env_id}", f"run.env_steps={steps}", *overrides])

    suite_run = config(spec.algo.preset, spec.env.env_id, spec.budget, spec.overrides(suite))
    base = config(env.preset, env.env_id, env.steps, env.overrides)
    (ratio0,) = variants(base, [0.0], controls=True)
    assert apply_overrides(base, ratio0["overrides"]) == suite_run
    assert suite_run.env.options == {} and suite_run.run.eval_every == 2000


def test_frontier_fit_recovers_a_known_frontier():
    from benchmarks.dreaming import fit_frontier

    s = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    d = 500.0 + (3000.0 / s) ** 0.7
    fit = fit_frontier(list(zip(s, d, strict=True)))
    np.testing.assert_allclose(
        [fit["d_min"], fit["beta"], fit["alpha"]], [500, 3000, 0.7], rtol=1e-2
    )
    assert fit_frontier([(1.0, 5.0), (2.0, float("inf"))]) is None


def test_median_steps_are_never_where_the_median_seed_never_stays():
    from benchmarks.dreaming import median_interval

    inf = float("inf")
    point, low, high = median_interval(np.array([1000.0, 2000.0, 3000.0, inf, inf]))
    assert point == 3000.0 and 1000.0 <= low <= point and high == inf
    assert median_interval(np.array([1000.0, 2000.0, inf, inf]))[0] == inf  # 2000 and never
    assert median_interval(np.array([inf, inf])) == (inf, inf, inf)
    assert median_interval(np.array([1500.0] * 4)) == (1500.0, 1500.0, 1500.0)


def test_dreaming_verdict_needs_the_best_ratio_to_beat_ratio_0_and_its_control():
    from benchmarks.dreaming import verdict

    finals = {
        "dream 0": np.array([100.0, 110, 120]),
        "dream 1": np.array([150.0, 160, 170]),
        "dream 4": np.array([400.0, 410, 420]),
        "control 4": np.array([200.0, 210, 220]),
    }
    text = verdict(finals)
    assert text.startswith("Verdict: dreaming wins. The best ratio, dream 4, is better than ")
    assert "better than dream 0; better than control 4" in text
    finals["control 4"] = np.array([500.0, 510, 520])
    text = verdict(finals)
    assert "no win for dreaming" in text and "worse than control 4" in text
    finals["control 4"] = np.array([300.0, 410, 520])  # the same mean as dream 4
    assert "not distinguishable from control 4" in verdict(finals)
    finals["control 4"] = np.array([0.0])
    assert "not comparable with control 4 (too few seeds)" in verdict(finals)
    assert verdict({"dream 4": finals["dream 4"]}).startswith("Verdict: the sweep needs")


def test_weights_sweep_names_each_pair_and_keeps_one_control_per_ratio(tmp_path):
    from benchmarks.dreaming import kept_fraction, variants

    cfg = apply_overrides(debug(), ["run.env_steps=2000"])
    found = {
        v["name"]: v["overrides"]
        for v in variants(cfg, [0.0, 1.0], controls=True, weights=[0.1, 1.0], value_weights=[0.5])
    }
    assert set(found) == {"dream 0", "dream 1 w0.1", "dream 1 w1", "control 1"}
    assert found["dream 1 w1"] == ["dream.ratio=1.0", "dream.policy_weight=1.0",
                                   "dream.value_weight=0.5"]  # fmt: skip
    assert found["dream 0"] == ["dream.ratio=0.0"]
    run = tmp_path / "seed0"
    run.mkdir()
    (run / "metrics.csv").write_text(
        "env_steps,charts/dream_active,charts/dream_kept\n100,0,0\n200,0.5,0.3\n300,1,0.9\n"
    )
    assert kept_fraction(tmp_path) == pytest.approx((0.6 + 0.9) / 2)
    (run / "metrics.csv").write_text("env_steps,losses/total\n100,1\n")
    assert kept_fraction(tmp_path) is None


def test_the_dream_loss_adds_its_sum_over_rollouts_divided_by_the_batch_size(plain):
    _, batch, _, late, base = plain
    cfg, _, learner, _, _ = build(*OVERRIDES, "dream.ratio=3", "dream.horizon=2")
    _, metrics = jax.jit(learner.update)(late, batch)
    n, b = dream_starts(cfg), batch.frames.shape[0]
    assert n != b  # a sum taken as a mean, or times B, would show
    added = cfg.dream.policy_weight * float(metrics["losses/dream_policy"]) * n / b
    total = float(metrics["losses/total"]) - float(base["losses/total"])
    np.testing.assert_allclose(total, added, rtol=1e-4)


def test_dreams_start_at_each_batch_row_in_turn_then_at_the_next_window_position(plain):
    """The update's dream loss equals one computed apart from it, from the start observations
    the rule names (row i % B at unroll position i // B) and the update's own random key."""
    _, batch, _, late, _ = plain
    # Every parameter moved: the zero-initialised policy head would give every state one loss.
    late = late.replace(params=perturbed(late.params, 5))
    cfg, _, learner, _, _ = build(*OVERRIDES, "dream.ratio=3", "dream.horizon=2")
    _, metrics = jax.jit(learner.update)(late, batch)
    n, b, k = dream_starts(cfg), batch.frames.shape[0], cfg.replay.unroll_steps
    assert b < n <= b * (k + 1) and batch.frames.shape[1] != b
    i = np.arange(n)
    obs = batch.frames[i % b, i // b]  # one-frame observations: the frame is the observation
    net = make_network(cfg.model, (4,), 2)
    dreaming = make_dreaming(cfg, net)
    _, target_rng, _ = jax.random.split(late.rng, 3)
    tgt = dreaming.imagine(late.target_variables, jax.random.fold_in(target_rng, 1), obs)
    variables = {"params": late.params, "batch_stats": late.batch_stats}

    def apply(method, *args):
        return net.apply(variables, *args, train=True, method=method, mutable=["batch_stats"])[0]

    _, expected = dreaming.loss(apply, variables, obs, tgt)
    np.testing.assert_allclose(
        metrics["losses/dream_policy"], expected["losses/dream_policy"], rtol=1e-4
    )
