"""JAX-native environments: reset and step as pure functions of a key and a state.

The fused training loop (``dreamer.loops.fused_scan``) steps such an environment inside
``jit``, with envs and seeds ``vmap``ped. The protocol is one frozen record, ``JaxEnv``:

```python
obs, state = env.reset(key)                                      # one env, unbatched
obs, state, reward, terminated, truncated = env.step(key, state, action)
```

``step`` resets by itself: when the episode ends (``terminated`` or ``truncated``) the
returned ``obs`` and ``state`` are already those of a new episode (gymnasium's ``SAME_STEP``
autoreset). ``terminated`` means a terminal state (value 0 afterwards); ``truncated`` a cut
(a time limit). ``observation_space`` / ``action_space`` are gymnasium spaces, read by the
agent exactly as for a gymnasium env.

Sources (``make_jax``):

- ``gymnax:<id>``: a gymnax environment (``gymnax.make(id)``: CartPole-v1, Acrobot-v1,
  MountainCar-v0, the MinAtar games, the bsuite tasks), adapted here: the episode's time
  limit (gymnax's ``is_truncated``) ends it as ``truncated``, and observations of several
  axes are flattened to vectors (option ``flatten``, default true), or with option
  ``image`` a frame ``[H, W, C]`` in [0, 1] (MinAtar's) becomes a one-frame uint8 stack
  ``[1, H, W, C]`` for the conv trunk;
- ``package.module:factory``: the factory returns a ``JaxEnv`` (``factory(**options)``).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

GYMNAX_PREFIX = "gymnax:"


@dataclasses.dataclass(frozen=True)
class JaxEnv:
    """A JAX-native environment (see the module docstring for the protocol)."""

    reset: Callable[[jax.Array], tuple[jax.Array, Any]]
    """``key -> (obs, state)``."""
    step: Callable[[jax.Array, Any, jax.Array], tuple[jax.Array, Any, Any, Any, Any]]
    """``(key, state, action) -> (obs, state, reward, terminated, truncated)``, resetting by
    itself when the episode ends."""
    observation_space: gymnasium.spaces.Box
    action_space: gymnasium.spaces.Discrete
    id: str = "jax-env"


class GymnasiumView(gymnasium.Env):
    """A ``JaxEnv`` as a gymnasium env, for the host loops (DQN, PPO, EfficientZero's host
    loop): ``reset``/``step`` run the jitted pure functions on numpy values.

    The JAX protocol resets inside ``step``, so the observation returned with
    ``terminated``/``truncated`` is already the next episode's first (gymnasium's vector env
    then resets again, from a fresh key). A loop that bootstraps a truncated episode from its
    last observation sees that first observation instead.

    A step is one call of a jitted function (the key split included) and one transfer of its
    results to the host; views made by ``make_gymnasium`` with the same id and options share
    their compiled functions, so an evaluation that makes fresh envs does not compile again.
    """

    metadata = {"render_modes": []}

    def __init__(self, env: JaxEnv, compiled: tuple[Callable, Callable] | None = None):
        """``compiled``: ``jitted(env)`` of an env with the same functions, to share."""
        self.env = env
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self._reset, self._step = compiled or jitted(env)
        self._key = jax.random.PRNGKey(0)
        self._state = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        self._key, obs, self._state = self._reset(self._key)
        return np.asarray(obs), {}

    def step(self, action: Any):
        self._key, self._state, out = self._step(self._key, self._state, np.int32(action))
        obs, reward, terminated, truncated = jax.device_get(out)
        return np.asarray(obs), float(reward), bool(terminated), bool(truncated), {}


def jitted(env: JaxEnv) -> tuple[Callable, Callable]:
    """``env``'s reset and step, jitted, each splitting the view's key first:
    ``reset(key) -> (key, obs, state)``, ``step(key, state, action) -> (key, state, (obs,
    reward, terminated, truncated))``."""

    def reset(key: jax.Array) -> tuple[jax.Array, jax.Array, Any]:
        key, sub = jax.random.split(key)
        obs, state = env.reset(sub)
        return key, obs, state

    def step(key: jax.Array, state: Any, action: jax.Array) -> tuple:
        key, sub = jax.random.split(key)
        obs, state, reward, terminated, truncated = env.step(sub, state, action)
        return key, state, (obs, reward, terminated, truncated)

    return jax.jit(reset), jax.jit(step)


_COMPILED: dict[str, tuple[JaxEnv, tuple[Callable, Callable]]] = {}
"""``make_gymnasium``'s envs and their jitted functions, by id and options."""


def make_gymnasium(env_id: str, **options: Any) -> GymnasiumView:
    """The JAX-native env ``env_id`` (``gymnax:<id>``) as a gymnasium env."""
    key = f"{env_id} {sorted(options.items())!r}"
    if key not in _COMPILED:
        env = make_jax(env_id, **options)
        _COMPILED[key] = env, jitted(env)
    return GymnasiumView(*_COMPILED[key])


class JaxEnvError(ValueError):
    """A JAX-native environment that cannot be used; the message says why and what to do."""


def is_jax_env_id(env_id: str) -> bool:
    """Whether ``env_id`` names a JAX-native env without making it: ``gymnax:<id>``. (A
    ``module:factory`` id is JAX-native if its factory is marked ``jax_native``: see
    ``is_jax_factory_id``.)"""
    return env_id.startswith(GYMNAX_PREFIX)


def make_jax(env_id: str, **options: Any) -> JaxEnv:
    """The JAX-native env ``env_id`` (``gymnax:<id>`` or ``package.module:factory``)."""
    env = try_make_jax(env_id, **options)
    if env is None:
        raise JaxEnvError(
            f"{env_id!r} is not a JAX-native environment: use gymnax:<id> (e.g. "
            "gymnax:CartPole-v1) or a package.module:factory that returns envs.JaxEnv."
        )
    return env


def try_make_jax(env_id: str, **options: Any) -> JaxEnv | None:
    """``make_jax(env_id)`` if ``env_id`` is JAX-native, else None (a gymnasium env)."""
    if env_id.startswith(GYMNAX_PREFIX):
        return _from_gymnax(env_id[len(GYMNAX_PREFIX) :], **options)
    factory = _jax_factory(env_id)
    if factory is None:
        return None
    env = factory(**options)
    if not isinstance(env, JaxEnv):
        raise JaxEnvError(
            f"{env_id} is marked jax_native but returned {type(env).__name__}, not envs.JaxEnv."
        )
    check_jax_env(env)
    return env


def is_jax_factory_id(env_id: str) -> bool:
    """Whether ``env_id`` is a ``package.module:factory`` marked ``jax_native``, without making
    the env (the module is imported)."""
    return _jax_factory(env_id) is not None


def _jax_factory(env_id: str) -> Callable[..., JaxEnv] | None:
    """The factory of a ``package.module:factory`` id marked ``jax_native``, else None."""
    if ":" not in env_id or "/" in env_id or env_id.startswith(GYMNAX_PREFIX):
        return None
    module_name, _, attr = env_id.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return None  # the gymnasium registry reports it
    return factory if getattr(factory, "jax_native", False) else None


def jax_native(factory: Callable[..., JaxEnv]) -> Callable[..., JaxEnv]:
    """Mark a ``module:factory`` as returning a ``JaxEnv`` (so ``--env module:factory`` runs
    the fused loop): ``@envs.jax_native def make_my_env(**options) -> JaxEnv``."""
    factory.jax_native = True  # type: ignore[attr-defined]
    return factory


def check_jax_env(env: JaxEnv) -> None:
    """Trace ``reset`` and ``step`` once (no computation) and check the outputs against the
    spaces; a clear ``JaxEnvError`` if they cannot be jitted or do not match."""
    if not isinstance(env.action_space, gymnasium.spaces.Discrete):
        raise JaxEnvError(f"{env.id}: the action space must be Discrete, not {env.action_space}.")
    if not isinstance(env.observation_space, gymnasium.spaces.Box):
        raise JaxEnvError(f"{env.id}: the observation space must be a Box.")
    key = jax.random.PRNGKey(0)
    try:
        obs, state = jax.eval_shape(env.reset, key)
        action = jax.ShapeDtypeStruct((), jnp.int32)
        out = jax.eval_shape(env.step, key, jax.tree.map(_like, state), action)
    except Exception as e:  # tracing errors come in many types
        raise JaxEnvError(
            f"{env.id}: reset/step cannot be traced by jax ({type(e).__name__}: "
            f"{str(e)[:200]}). They must be pure functions of jax arrays (no Python control "
            "flow on array values: use jnp.where / jax.lax.cond)."
        ) from e
    shape = tuple(env.observation_space.shape)
    for name, o in (("reset", obs), ("step", out[0])):
        if tuple(o.shape) != shape:
            raise JaxEnvError(
                f"{env.id}: {name} returns observations of shape {tuple(o.shape)}, the "
                f"observation space says {shape}."
            )
    for name, value in zip(("reward", "terminated", "truncated"), out[2:], strict=True):
        if tuple(value.shape) != ():
            raise JaxEnvError(f"{env.id}: step's {name} must be a scalar, got {value.shape}.")


def _like(x: Any) -> Any:
    return jax.ShapeDtypeStruct(x.shape, x.dtype)


# -- gymnax -----------------------------------------------------------------------------------


def _from_gymnax(name: str, *, flatten: bool = True, image: bool = False, **options: Any) -> JaxEnv:
    """gymnax env ``name``; with ``flatten`` an observation of several axes (MinAtar's
    ``[10, 10, C]``, DeepSea's ``[N, N]``) becomes a vector, the MLP trunk's input; with
    ``image`` a frame ``[H, W, C]`` of values in [0, 1] becomes a uint8 stack ``[1, H, W, C]``
    (0 or 255 for MinAtar's binary channels), the conv trunk's input."""
    try:
        import gymnax
    except ImportError as e:
        raise JaxEnvError(f"gymnax:{name} needs the gymnax package: pip install gymnax.") from e
    try:
        env, params = gymnax.make(name, **options)
    except (ValueError, KeyError, TypeError) as e:
        known = ", ".join(sorted(gymnax.registered_envs))
        raise JaxEnvError(f"gymnax has no environment {name!r} ({e}); known: {known}.") from e
    obs_space = env.observation_space(params)
    native = tuple(int(d) for d in obs_space.shape)
    if image:
        if len(native) != 3:
            raise JaxEnvError(
                f"gymnax:{name} has observations of shape {native}; option image needs "
                "frames [H, W, C]. Leave it out to get vectors."
            )
        shape = (1, *native)
        observation_space = gymnasium.spaces.Box(0, 255, shape, np.uint8)

        def convert(obs: jax.Array) -> jax.Array:
            return jnp.round(jnp.clip(obs, 0.0, 1.0) * 255).astype(jnp.uint8).reshape(shape)
    else:
        shape = (int(np.prod(native)),) if flatten and len(native) > 1 else native
        observation_space = gymnasium.spaces.Box(
            np.broadcast_to(np.asarray(obs_space.low, np.float32), native).reshape(shape),
            np.broadcast_to(np.asarray(obs_space.high, np.float32), native).reshape(shape),
            shape,
            np.float32,
        )

        def convert(obs: jax.Array) -> jax.Array:
            return obs.astype(jnp.float32).reshape(shape)

    action_space = gymnasium.spaces.Discrete(int(env.action_space(params).n))

    def reset(key: jax.Array) -> tuple[jax.Array, Any]:
        obs, state = env.reset_env(key, params)
        return convert(obs), state

    def step(key: jax.Array, state: Any, action: jax.Array) -> tuple:
        key_step, key_reset = jax.random.split(key)
        # gymnax 1.x: step_env reports natural terminations only; the time limit is
        # is_truncated (a cut, not a terminal), as its own auto-resetting ``step`` does.
        obs, nxt, reward, terminated, _ = env.step_env(key_step, state, action, params)
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.asarray(env.is_truncated(nxt, params), bool) & ~terminated
        done = terminated | truncated
        reset_obs, reset_state = env.reset_env(key_reset, params)
        obs = convert(jnp.where(done, reset_obs, obs))
        state = jax.tree.map(lambda r, n: jnp.where(done, r, n), reset_state, nxt)
        return obs, state, jnp.asarray(reward, jnp.float32), terminated, truncated

    return JaxEnv(
        reset=reset,
        step=step,
        observation_space=observation_space,
        action_space=action_space,
        id=f"{GYMNAX_PREFIX}{name}",
    )
