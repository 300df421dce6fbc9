"""Environment ids, the registry of short names, and ``make`` / ``make_vector``.

An ``env_id`` is resolved in this order:

1. a name registered with ``register``;
2. ``"package.module:factory"``: the module is imported and ``factory(**options)`` called;
3. ``"ALE/<Game>-v5"``: the game under the Atari-100k protocol (``envs.atari``);
4. any other gymnasium id: ``gymnasium.make(env_id, **options)``.

Factories (1, 2) receive ``mode=`` too only when their signature names a ``mode``
parameter (a ``**kwargs`` factory that forwards its options to an env class is not given
one); gymnasium ids (4) ignore the mode. An exception raised by a factory is re-raised as
``EnvFactoryError``, whose message names the factory (the original is its ``__cause__``).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import os
import re
import signal
from collections.abc import Callable
from typing import Any

import gymnasium
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from envs.atari import AtariOptions, check_mode, make_atari

EnvFactory = Callable[..., gymnasium.Env]
"""Called with the env's options as keyword arguments (and ``mode`` if it names it)."""


class EnvFactoryError(RuntimeError):
    """A user's environment factory raised; the message names it, ``__cause__`` is the error."""


VECTORIZATIONS = ("sync", "async")

_ATARI_ID = re.compile(r"^ALE/\w+-v5$")
_FACTORIES: dict[str, EnvFactory] = {}


def register(name: str, factory: EnvFactory) -> None:
    """Makes ``make(name, **options)`` call ``factory(**options)``.

    Registered names are looked up before anything else. Registering a name again with a
    different factory is an error.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"an environment name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory for {name!r} must be callable, got {factory!r}")
    if _FACTORIES.get(name, factory) is not factory:
        raise ValueError(f"environment name {name!r} is already registered")
    _FACTORIES[name] = factory


def make(
    env_id: str, *, seed: int | None = None, mode: str = "train", **options: Any
) -> gymnasium.Env:
    """Makes one environment (see the module docstring for how ``env_id`` is resolved).

    Args:
      env_id: registered name, ``package.module:factory``, ``ALE/<Game>-v5`` or gymnasium id.
      seed: if given, the first ``reset()`` called without a seed uses this one (later resets
        continue the env's RNG; an explicit ``reset(seed=...)`` wins), and the action space is
        seeded with it. So ``make(id, seed=s).reset()`` equals ``make(id).reset(seed=s)``.
      mode: "train" or "eval"; selects the Atari protocol's mode defaults.
      **options: keyword options of the environment (``AtariOptions`` fields for Atari).
    """
    return _seeded_from(_constructor(env_id, check_mode(mode), options), seed)


def make_vector(
    env_id: str,
    num_envs: int,
    *,
    seed: int | None = None,
    mode: str = "train",
    vectorization: str = "sync",
    **options: Any,
) -> gymnasium.vector.VectorEnv:
    """Makes ``num_envs`` copies of ``make(env_id, ...)`` as one gymnasium vector env.

    Sub-env ``i`` is made with ``seed + i`` (so its first reset is seeded with it, as in
    ``make``; ``reset(seed=s)`` on the vector env seeds sub-env i with ``s + i`` too).
    Autoreset is ``SAME_STEP``: after a terminal or truncated step the returned observation is
    already the next episode's first one, and ``info["final_obs"]`` / ``info["final_info"]``
    (masked by ``info["_final_obs"]``) hold the last observation and info of the episode.

    Args:
      vectorization: "sync" (one process) or "async" (one spawned subprocess per env).
    """
    if vectorization not in VECTORIZATIONS:
        raise ValueError(f"vectorization must be one of {VECTORIZATIONS}, got {vectorization!r}")
    if not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
    # Resolve (and validate) once here, so that errors surface in this process.
    constructor = _constructor(env_id, check_mode(mode), options)
    env_fns = [
        functools.partial(_seeded_from, constructor, None if seed is None else seed + i)
        for i in range(num_envs)
    ]
    if vectorization == "sync":
        return SyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.SAME_STEP)
    # Workers are spawned, not forked: forking a process in which JAX has started its threads
    # can deadlock. They ignore SIGINT and SIGTERM (Ctrl-C reaches the whole process group):
    # the parent decides when to stop and closes them.
    worker_fns = [functools.partial(_in_worker, fn, os.getpid()) for fn in env_fns]
    return AsyncVectorEnv(worker_fns, autoreset_mode=AutoresetMode.SAME_STEP, context="spawn")


def _in_worker(env_fn: Callable[[], gymnasium.Env], parent_pid: int) -> gymnasium.Env:
    """Makes the env; in a worker process (not in the parent, which makes one to read the
    spaces) the stop signals are ignored first."""
    if os.getpid() != parent_pid:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
    return env_fn()


class SeedFirstReset(gymnasium.Wrapper, gymnasium.utils.RecordConstructorArgs):
    """Seeds the first ``reset()`` that is called without a seed with a fixed seed."""

    def __init__(self, env: gymnasium.Env, seed: int):
        gymnasium.utils.RecordConstructorArgs.__init__(self, seed=seed)
        super().__init__(env)
        self._pending_seed: int | None = seed
        env.action_space.seed(seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed = self._pending_seed if seed is None else seed
        self._pending_seed = None
        return self.env.reset(seed=seed, options=options)


def _seeded_from(constructor: Callable[[], gymnasium.Env], seed: int | None) -> gymnasium.Env:
    env = constructor()
    return env if seed is None else SeedFirstReset(env, seed)


def _constructor(env_id: str, mode: str, options: dict[str, Any]) -> Callable[[], gymnasium.Env]:
    """Resolves ``env_id`` into a picklable zero-argument constructor; validates early."""
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a string, got {env_id!r}")
    if env_id in _FACTORIES:
        return functools.partial(_call_factory, _FACTORIES[env_id], env_id, mode, options)
    if ":" in env_id:
        return _module_constructor(env_id, mode, options)
    _register_ale()
    if _ATARI_ID.match(env_id) and env_id in gymnasium.registry:
        AtariOptions.from_kwargs(**options)  # fail fast on bad options
        return functools.partial(make_atari, env_id, mode=mode, **options)
    if env_id in gymnasium.registry:
        return functools.partial(gymnasium.make, env_id, **options)
    raise ValueError(_unknown_id_message(env_id))


def _module_constructor(env_id: str, mode: str, options: dict[str, Any]):
    module_name, _, attribute = env_id.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"cannot import module {module_name!r} of environment {env_id!r}: {error}"
        ) from error
    factory = getattr(module, attribute, None)
    if callable(factory):
        return functools.partial(_call_factory, factory, env_id, mode, options)
    if attribute in gymnasium.registry:  # gymnasium's own "module:EnvName-v0" form
        return functools.partial(gymnasium.make, attribute, **options)
    raise ValueError(
        f"module {module_name!r} has no callable {attribute!r} (from environment {env_id!r}); "
        "expected 'package.module:factory' with factory(**options) returning a gymnasium.Env"
    )


def _call_factory(
    factory: EnvFactory, env_id: str, mode: str, options: dict[str, Any]
) -> gymnasium.Env:
    kwargs = dict(options, mode=mode) if _names_mode(factory) else dict(options)
    try:
        env = factory(**kwargs)
    except Exception as error:
        name = getattr(factory, "__qualname__", repr(factory))
        module = getattr(factory, "__module__", None)
        raise EnvFactoryError(
            f"the environment factory {module + '.' if module else ''}{name} (environment "
            f"{env_id!r}) raised {type(error).__name__}: {error}"
        ) from error
    if not isinstance(env, gymnasium.Env):
        raise TypeError(
            f"the factory of environment {env_id!r} returned {type(env).__name__}, "
            "expected a gymnasium.Env"
        )
    return env


def _names_mode(factory: EnvFactory) -> bool:
    """Whether ``factory`` has a parameter called ``mode`` that can be passed by keyword."""
    try:
        parameter = inspect.signature(factory).parameters.get("mode")
    except (TypeError, ValueError):  # no introspectable signature (some builtins)
        return False
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return parameter is not None and parameter.kind in keyword


@functools.cache
def _register_ale() -> None:
    """Registers the ``ALE/...`` ids with gymnasium (importing ale_py does it)."""
    import ale_py

    gymnasium.register_envs(ale_py)


def _unknown_id_message(env_id: str) -> str:
    # Atari-100k ids first, then newest versions first: setdefault keeps the first alias.
    names = sorted(
        gymnasium.registry, key=lambda name: (not _ATARI_ID.match(name), -_version(name))
    )
    aliases: dict[str, str] = {}
    for name in [*_FACTORIES, *names]:
        aliases.setdefault(name.lower(), name)
        aliases.setdefault(_short_name(name), name)
    hits = difflib.get_close_matches(_short_name(env_id), aliases, n=3, cutoff=0.6)
    hits += difflib.get_close_matches(env_id.lower(), aliases, n=3, cutoff=0.8)
    matches = list(dict.fromkeys(aliases[hit] for hit in hits))[:3]
    suggestion = f" Did you mean {', '.join(map(repr, matches))}?" if matches else ""
    return (
        f"unknown environment id {env_id!r}.{suggestion} An id is a name registered with "
        "envs.register, an Atari game 'ALE/<Game>-v5', any gymnasium id (e.g. 'CartPole-v1'), "
        "or your own environment as 'package.module:factory' where factory(**options) "
        "returns a gymnasium.Env."
    )


def _version(env_id: str) -> int:
    match = re.search(r"-v(\d+)$", env_id)
    return int(match.group(1)) if match else -1


def _short_name(env_id: str) -> str:
    """'ALE/Pong-v5' -> 'pong': the part a person is likely to remember."""
    return re.sub(r"-v\d+$", "", env_id.rsplit("/", 1)[-1]).lower()
