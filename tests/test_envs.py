"""envs/: id resolution, registry, seeding, vector envs, the example env and resizing."""

import os
import signal
import sys
import time

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs import registry
from envs.examples import Corridor, make_corridor
from envs.resize import AreaResize, area_weights

CORRIDOR = "envs.examples:make_corridor"


@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.setattr(registry, "_FACTORIES", {})


def test_gymnasium_id_is_made_and_seeded():
    env = envs.make("CartPole-v1", seed=3)
    obs, _ = env.reset()
    assert env.observation_space.contains(obs)
    np.testing.assert_array_equal(obs, envs.make("CartPole-v1").reset(seed=3)[0])
    assert envs.make("CartPole-v1", max_episode_steps=7).spec.max_episode_steps == 7
    recreated = envs.make("CartPole-v1", seed=3).spec.make()  # the seed is part of the spec
    np.testing.assert_array_equal(recreated.reset()[0], obs)


def test_module_factory_makes_the_example_env():
    env = envs.make(CORRIDOR, length=3)
    assert isinstance(env.unwrapped, Corridor)
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs, [1, 0, 0])
    obs, reward, terminated, _, _ = env.step(1)
    assert not terminated and reward == 0.0
    obs, reward, terminated, truncated, _ = env.step(1)
    np.testing.assert_array_equal(obs, [0, 0, 1])
    assert terminated and not truncated and reward == 1.0


def test_example_env_passes_gymnasium_checks():
    check_env(make_corridor(length=4), skip_render_check=True)


def test_register_passes_options_and_mode(clean_registry):
    calls = []

    def factory(length, mode):
        calls.append((length, mode))
        return Corridor(length=length)

    envs.register("corridor", factory)
    envs.register("corridor", factory)  # the same factory again is fine
    env = envs.make("corridor", mode="eval", length=5)
    assert env.observation_space.shape == (5,) and calls == [(5, "eval")]
    envs.register("plain", lambda length: Corridor(length=length))  # no mode parameter
    assert envs.make("plain", length=4).observation_space.shape == (4,)
    with pytest.raises(ValueError, match="already registered"):
        envs.register("corridor", make_corridor)


def test_mode_goes_only_to_factories_that_name_it(clean_registry):
    envs.register("forwarding", lambda **kwargs: Corridor(**kwargs))  # options -> env class
    assert envs.make("forwarding", mode="eval", length=4).observation_space.shape == (4,)
    calls = []

    def named(*, length, mode="train", **rest):
        calls.append(mode)
        return Corridor(length=length, **rest)

    envs.register("named", named)
    envs.make("named", mode="eval", length=4)
    assert calls == ["eval"]


def test_a_factory_that_raises_is_named_and_keeps_its_error(clean_registry):
    def broken_factory(**options):
        raise RuntimeError("no licence for the simulator")

    envs.register("broken", broken_factory)
    with pytest.raises(envs.EnvFactoryError) as error:
        envs.make("broken")
    message = str(error.value)
    assert "broken_factory" in message and "'broken'" in message
    assert "raised RuntimeError: no licence for the simulator" in message
    assert isinstance(error.value.__cause__, RuntimeError)  # its traceback stays reachable


def test_async_workers_ignore_stop_signals():
    """Ctrl-C reaches the whole process group; the parent, not the workers, decides."""
    venv = envs.make_vector(CORRIDOR, 1, seed=0, vectorization="async", length=3)
    try:
        venv.reset()
        for signum in (signal.SIGINT, signal.SIGTERM):
            os.kill(venv.processes[0].pid, signum)
        time.sleep(0.5)
        obs, *_ = venv.step(np.array([1]))
        np.testing.assert_array_equal(obs, [[0, 1, 0]])
        assert venv.processes[0].is_alive()
    finally:
        venv.close()


def test_factories_must_return_a_gymnasium_env(clean_registry):
    envs.register("not-an-env", lambda: object())
    with pytest.raises(TypeError, match="'not-an-env'.*gymnasium.Env"):
        envs.make("not-an-env")
    with pytest.raises(TypeError, match="gymnasium.Env"):
        envs.make("builtins:dict")


def test_bad_module_factory_ids_explain_the_format():
    with pytest.raises(ValueError, match="cannot import module 'no_such_module_xyz'"):
        envs.make("no_such_module_xyz:make")
    with pytest.raises(ValueError, match="package.module:factory"):
        envs.make("envs.examples:no_such_factory")


def test_unknown_id_suggests_close_matches():
    with pytest.raises(ValueError) as error:
        envs.make("Pongg")
    message = str(error.value)
    assert "'Pongg'" in message and "'ALE/Pong-v5'" in message
    assert "package.module:factory" in message
    with pytest.raises(ValueError, match="'CartPole-v1'"):
        envs.make("CartPol-v1")
    with pytest.raises(ValueError, match="'ALE/Breakout-v5'"):
        envs.make("ALE/Breakuot-v5")


def test_bad_mode_and_vectorization_name_the_valid_values():
    with pytest.raises(ValueError, match="'train', 'eval'.*'test'"):
        envs.make(CORRIDOR, mode="test")
    with pytest.raises(ValueError, match="'sync', 'async'"):
        envs.make_vector(CORRIDOR, 2, vectorization="threads")


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_vector_env_autoresets_in_the_same_step(vectorization):
    venv = envs.make_vector(CORRIDOR, 2, seed=0, vectorization=vectorization, length=3)
    obs, _ = venv.reset()
    np.testing.assert_array_equal(obs, [[1, 0, 0], [1, 0, 0]])
    obs, _, terminated, _, info = venv.step(np.array([1, 0]))
    assert not terminated.any() and "final_obs" not in info
    obs, reward, terminated, _, info = venv.step(np.array([1, 1]))
    np.testing.assert_array_equal(terminated, [True, False])
    np.testing.assert_array_equal(reward, [1.0, 0.0])
    np.testing.assert_array_equal(obs, [[1, 0, 0], [0, 1, 0]])  # env 0 already reset
    np.testing.assert_array_equal(info["_final_obs"], [True, False])
    np.testing.assert_array_equal(info["final_obs"][0], [0, 0, 1])
    venv.close()


def test_vector_env_is_deterministic_under_a_seed():
    def rollout():
        venv = envs.make_vector("CartPole-v1", 3, seed=1)
        observations = [venv.reset()[0]]
        for _ in range(30):
            observations.append(venv.step(np.array([0, 1, 1]))[0])
        venv.close()
        return np.stack(observations)

    first = rollout()
    np.testing.assert_array_equal(first, rollout())
    np.testing.assert_array_equal(first[0, 2], envs.make("CartPole-v1", seed=3).reset()[0])


@pytest.mark.parametrize("in_hw, out_hw", [((21, 16), (9, 6)), ((6, 4), (3, 2)), ((5, 7), (5, 7))])
@pytest.mark.parametrize("channels", [1, 3])
def test_area_resize_matches_exact_area_average(in_hw, out_hw, channels):
    (in_h, in_w), (out_h, out_w) = in_hw, out_hw
    frame = np.random.default_rng(0).integers(0, 256, (in_h, in_w, channels), dtype=np.uint8)
    # Exact reference: supersample to the common grid, then average each output cell.
    fine = frame.astype(np.float64).repeat(out_h, axis=0).repeat(out_w, axis=1)
    expected = fine.reshape(out_h, in_h, out_w, in_w, channels).mean(axis=(1, 3))
    out = np.zeros((out_h, out_w, channels), np.uint8)
    AreaResize(in_hw, out_hw, channels)(frame if channels == 3 else frame[..., 0], out)
    np.testing.assert_array_equal(out, np.floor(expected + 0.5))


def test_area_weights_are_exact_fractions():
    np.testing.assert_allclose(
        area_weights(5, 3), [[0.6, 0.4, 0, 0, 0], [0, 0.2, 0.6, 0.2, 0], [0, 0, 0, 0.4, 0.6]]
    )
    np.testing.assert_allclose(area_weights(210, 96).sum(axis=1), 1.0)


def test_envs_never_imports_dreamer():
    import pathlib

    for path in pathlib.Path(envs.__file__).parent.glob("*.py"):
        assert "dreamer" not in {
            line.split()[1].split(".")[0]
            for line in path.read_text().splitlines()
            if line.startswith(("import ", "from "))
        }, path


def test_single_images_become_one_frame_stacks(user_project, monkeypatch):
    monkeypatch.syspath_prepend(str(user_project))
    image = "my_pkg.my_envs:make_grid_image"
    assert envs.make(image).observation_space.shape == (5, 5, 3)
    venv = envs.make_vector(image, 2, seed=0, stack_images=True, size=4)
    assert venv.single_observation_space.shape == (1, 4, 4, 3)
    obs, _ = venv.reset()
    assert obs.shape == (2, 1, 4, 4, 3) and obs.dtype == np.uint8
    np.testing.assert_array_equal(obs[0, 0, 0, 0], [255, 255, 255])  # the agent at (0, 0)
    obs, *_ = venv.step(np.array([1, 3]))  # down, right
    np.testing.assert_array_equal(obs[0, 0, 1, 0], [255, 255, 255])
    np.testing.assert_array_equal(obs[1, 0, 0, 1], [255, 255, 255])
    venv.close()
    vector = envs.make_vector("my_pkg.my_envs:make_grid", 1, stack_images=True)
    assert vector.single_observation_space.shape == (2,)  # vectors are left alone


def test_gymnasium_module_form_works_in_spawned_workers(user_project, monkeypatch):
    monkeypatch.syspath_prepend(str(user_project))
    monkeypatch.setenv("PYTHONPATH", str(user_project))  # for the spawned workers
    venv = envs.make_vector("my_pkg.my_envs:GridGoal-v0", 2, vectorization="async", size=3)
    obs, _ = venv.reset(seed=0)
    np.testing.assert_array_equal(obs, [[0.0, 0.0], [0.0, 0.0]])
    obs, *_ = venv.step(np.array([1, 3]))
    np.testing.assert_array_equal(obs, [[0.5, 0.0], [0.0, 0.5]])
    venv.close()


def test_installed_package_declares_an_env_name_as_entry_point(
    user_project, monkeypatch, clean_registry
):
    info = user_project / "my_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my_pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dreamer.envs]\ngrid-ep = my_pkg.my_envs:make_grid\n")
    monkeypatch.syspath_prepend(str(user_project))
    env = envs.make("grid-ep", size=3)
    assert env.observation_space.shape == (2,) and env.unwrapped.size == 3
    with pytest.raises(ValueError, match="'dreamer.envs' entry point"):
        envs.make("grid-epp")


def test_own_envs_package_behind_the_projects_names_the_clash(tmp_path, monkeypatch):
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "__init__.py").write_text("")
    (tmp_path / "envs" / "grid.py").write_text("def make_grid(): ...\n")
    monkeypatch.setattr("sys.path", [*sys.path, str(tmp_path)])  # the project's comes first
    with pytest.raises(ValueError) as error:
        envs.make("envs.grid:make_grid")
    message = str(error.value)
    assert "Two packages are named 'envs'" in message
    assert str(tmp_path / "envs") in message and "rename your package" in message


def test_missing_module_says_it_must_be_importable():
    with pytest.raises(ValueError, match="PYTHONPATH"):
        envs.make("no_such_pkg_xyz.envs:make")


def test_a_gymnax_env_steps_through_gymnasium_as_through_jax():
    import jax

    from envs.jax_envs import make_jax

    view = envs.make("gymnax:CartPole-v1")
    obs, _ = view.reset(seed=3)
    jax_env = make_jax("gymnax:CartPole-v1")
    _, sub = jax.random.split(jax.random.PRNGKey(3))
    expected, state = jax_env.reset(sub)
    np.testing.assert_array_equal(obs, np.asarray(expected))
    ended = False
    for _ in range(200):
        obs, reward, terminated, truncated, _ = view.step(0)  # always left: falls soon
        assert reward == 1.0 and obs.shape == (4,)
        if terminated or truncated:
            ended = terminated
            break
    assert ended


def test_a_gymnax_time_limit_is_a_truncation():
    """gymnax keeps the time limit out of ``step_env``: CartPole-v1 held upright must still
    end at 500 steps, as truncated (an adapter that missed it gave endless episodes)."""
    view = envs.make("gymnax:CartPole-v1")
    obs, _ = view.reset(seed=0)
    steps = 0
    while steps < 600:
        obs, _, terminated, truncated, _ = view.step(int(obs[2] + 0.5 * obs[3] > 0))
        steps += 1
        if terminated or truncated:
            break
    assert (steps, terminated, truncated) == (500, False, True)


def test_gymnax_frames_as_images_are_one_frame_uint8_stacks():
    import jax

    from envs.jax_envs import make_jax

    flat = make_jax("gymnax:Breakout-MinAtar")
    image = make_jax("gymnax:Breakout-MinAtar", image=True)
    assert flat.observation_space.shape == (400,)
    assert image.observation_space.shape == (1, 10, 10, 4)
    assert image.observation_space.dtype == np.uint8
    key = jax.random.PRNGKey(0)
    vector, _ = flat.reset(key)
    frame, state = image.reset(key)
    # The same frame: 255 where the flattened vector has 1, 0 elsewhere.
    np.testing.assert_array_equal(np.asarray(frame).reshape(-1), np.asarray(vector) * 255)
    frame, *_ = image.step(key, state, 1)
    assert frame.shape == (1, 10, 10, 4) and frame.dtype == np.uint8
    with pytest.raises(envs.JaxEnvError, match="option image needs frames"):
        make_jax("gymnax:CartPole-v1", image=True)


def test_catch_pays_plus_one_for_a_catch_and_minus_one_for_a_miss():
    import jax

    from envs.jax_envs import make_jax

    catch = make_jax("envs.examples:make_catch", rows=4, columns=3)
    obs, state = catch.reset(jax.random.PRNGKey(1))
    column = int(state["ball_column"])
    grid = np.asarray(obs).reshape(4, 3)
    assert grid[0, column] == 1 and grid[3, 1] == 1 and grid.sum() == 2  # ball, paddle
    for follow in (True, False):
        obs, state = catch.reset(jax.random.PRNGKey(1))
        rewards, ends = [], []
        for _ in range(3):  # rows - 1 steps to the bottom row
            move = np.sign(column - int(state["paddle"])) if follow else 0
            if not follow:  # move away from the ball's column
                move = -1 if column >= 1 else 1
            obs, state, reward, terminated, truncated = catch.step(
                jax.random.PRNGKey(2), state, move + 1
            )
            rewards.append(float(reward))
            ends.append(bool(terminated))
            assert not bool(truncated)
        assert ends == [False, False, True]
        assert rewards == [0.0, 0.0, 1.0 if follow else -1.0]
    # A JAX-native factory is also a gymnasium env for the host loops (DQN, PPO).
    view = envs.make("envs.examples:make_catch")
    assert view.reset(seed=0)[0].shape == (50,)


def test_gymnasium_views_step_as_jax_and_share_their_compiled_functions():
    import jax

    from envs.jax_envs import make_jax

    view = envs.make("gymnax:CartPole-v1")
    assert envs.make("gymnax:CartPole-v1")._step is view._step  # compiled once per id
    assert envs.make("gymnax:Acrobot-v1")._step is not view._step
    obs, _ = view.reset(seed=3)
    jax_env = make_jax("gymnax:CartPole-v1")
    key, sub = jax.random.split(jax.random.PRNGKey(3))
    expected, state = jax_env.reset(sub)
    np.testing.assert_array_equal(obs, np.asarray(expected))
    for action in (0, 1, 1, 0, 0):
        key, sub = jax.random.split(key)
        expected, state, reward, terminated, truncated = jax_env.step(sub, state, action)
        obs, r, t, tr, _ = view.step(action)
        np.testing.assert_allclose(obs, np.asarray(expected), atol=1e-6)  # jit vs eager
        assert (r, t, tr) == (float(reward), bool(terminated), bool(truncated))
        assert isinstance(obs, np.ndarray) and isinstance(r, float) and isinstance(t, bool)


def test_deep_sea_pays_0_99_for_the_path_that_always_moves_right_only():
    import jax

    from envs.jax_envs import make_jax

    assert envs.is_jax_factory_id("envs.grids:make_deep_sea")
    assert not envs.is_jax_factory_id("envs.examples:make_corridor")  # a gymnasium env
    assert not envs.is_jax_factory_id("CartPole-v1")
    assert not envs.is_jax_factory_id("gymnax:CartPole-v1")  # JAX-native, but no factory
    assert make_jax("envs.grids:make_deep_sea", size=5).observation_space.shape == (25,)
    env = make_jax("envs.grids:make_deep_sea")
    assert env.observation_space.shape == (100,) and env.action_space.n == 2
    key = jax.random.PRNGKey(0)

    def episode(choose):
        obs, state = env.reset(key)
        total, steps = 0.0, 0
        while True:
            right = int(state.action_mapping[state.row, state.column])  # the map's "right"
            obs, state, reward, terminated, truncated = env.step(key, state, choose(right))
            total, steps = total + float(reward), steps + 1
            if terminated or truncated:
                return total, steps, bool(terminated)

    total, steps, terminated = episode(lambda right: right)
    assert total == pytest.approx(1.0 - 10 * 0.01 / 10, abs=1e-6) and steps == 10 and terminated
    assert episode(lambda right: 1 - right)[0] == 0.0  # always left: nothing, no move cost
    alternate = iter([0, 1] * 5)
    total, steps, _ = episode(lambda right: right if next(alternate) else 1 - right)
    assert total == pytest.approx(-5 * 0.001, abs=1e-6) and steps == 10  # five moves right


def test_minigrid_through_its_image_view_gives_one_frame_uint8_stacks():
    env = envs.make("envs.grids:make_minigrid", seed=0, stack_images=True)
    assert env.observation_space.shape == (1, 7, 7, 3) and env.action_space.n == 7
    obs, _ = env.reset()
    assert obs.shape == (1, 7, 7, 3) and obs.dtype == np.uint8
    again, _ = envs.make("envs.grids:make_minigrid", seed=0, stack_images=True).reset()
    np.testing.assert_array_equal(obs, again)  # the seed fixes the layout
    obs, reward, terminated, truncated, _ = env.step(2)  # forward
    assert obs.shape == (1, 7, 7, 3) and reward == 0.0 and not terminated and not truncated
    view = envs.make("envs.grids:make_minigrid", name="MiniGrid-Empty-5x5-v0")
    view.reset(seed=0)
    assert view.unwrapped.spec.id == "MiniGrid-Empty-5x5-v0"
    frame = envs.make("envs.grids:make_minigrid", render_mode="rgb_array")
    frame.reset(seed=0)
    assert frame.render().ndim == 3  # videos of an evaluation work


def test_lunar_lander_is_installed():
    """The ``classic`` extra (``make install``) brings Box2D."""
    env = envs.make("LunarLander-v3", seed=0)
    obs, _ = env.reset()
    assert obs.shape == (8,) and env.action_space.n == 4
    assert len(env.step(0)) == 5
