"""Environment ids, the registry of short names, and ``make`` / ``make_vector``.

An ``env_id`` is resolved in this order:

1. a name registered with ``register``, or else declared by an installed package as an entry
   point of the group ``dreamer.envs`` (``grid = my_pkg.my_envs:make_grid``);
2. ``"package.module:factory"``: the module is imported and ``factory(**options)`` called;
   ``"package.module:EnvName-v0"``, an id that the module registers with gymnasium, is made
   by ``gymnasium.make`` (gymnasium's own form);
3. ``"ALE/<Game>-v5"``: the game under the Atari-100k protocol (``envs.atari``);
4. any other gymnasium id: ``gymnasium.make(env_id, **options)``.

Factories (1, 2) receive ``mode=`` too only when their signature names a ``mode``
parameter (a ``**kwargs`` factory that forwards its options to an env class is not given
one); gymnasium ids (4) ignore the mode. An exception raised by a factory is re-raised as
``EnvFactoryError``, whose message names the factory (the original is its ``__cause__``).

The networks take flat vectors ``[D]`` or frame stacks ``[S, H, W, C]``; with
``stack_images=True`` an env whose observations are single images ``[H, W, C]`` is given a
one-frame stack ``[1, H, W, C]`` (gymnasium's ``FrameStackObservation(env, 1)``).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata
import inspect
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import FrameStackObservation

from envs.atari import AtariOptions, check_mode, make_atari

EnvFactory = Callable[..., gymnasium.Env]
"""Called with the env's options as keyword arguments (and ``mode`` if it names it)."""


class EnvFactoryError(RuntimeError):
    """A user's environment factory raised; the message names it, ``__cause__`` is the error."""


VECTORIZATIONS = ("sync", "async")

ENTRY_POINT_GROUP = "dreamer.envs"
"""Entry-point group in which installed packages declare env names: ``name = module:factory``."""

PROJECT_PACKAGES = ("envs", "experiments", "benchmarks")
"""Top-level packages that the dreamer project installs besides ``dreamer``."""

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
    env_id: str,
    *,
    seed: int | None = None,
    mode: str = "train",
    stack_images: bool = False,
    **options: Any,
) -> gymnasium.Env:
    """Makes one environment (see the module docstring for how ``env_id`` is resolved).

    Args:
      env_id: registered name, ``package.module:factory``, ``ALE/<Game>-v5`` or gymnasium id.
      seed: if given, the first ``reset()`` called without a seed uses this one (later resets
        continue the env's RNG; an explicit ``reset(seed=...)`` wins), and the action space is
        seeded with it. So ``make(id, seed=s).reset()`` equals ``make(id).reset(seed=s)``.
      mode: "train" or "eval"; selects the Atari protocol's mode defaults.
      stack_images: give single-image observations ``[H, W, C]`` a one-frame stack axis.
      **options: keyword options of the environment (``AtariOptions`` fields for Atari).
    """
    return _seeded_from(_constructor(env_id, check_mode(mode), options), seed, stack_images)


def make_vector(
    env_id: str,
    num_envs: int,
    *,
    seed: int | None = None,
    mode: str = "train",
    vectorization: str = "sync",
    stack_images: bool = False,
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
      stack_images: as in ``make``.
    """
    if vectorization not in VECTORIZATIONS:
        raise ValueError(f"vectorization must be one of {VECTORIZATIONS}, got {vectorization!r}")
    if not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
    # Resolve (and validate) once here, so that errors surface in this process.
    constructor = _constructor(env_id, check_mode(mode), options)
    env_fns = [
        functools.partial(
            _seeded_from, constructor, None if seed is None else seed + i, stack_images
        )
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


def _seeded_from(
    constructor: Callable[[], gymnasium.Env], seed: int | None, stack_images: bool = False
) -> gymnasium.Env:
    env = constructor()
    if stack_images and is_single_image(env.observation_space):
        env = FrameStackObservation(env, 1)
    return env if seed is None else SeedFirstReset(env, seed)


def is_single_image(space: gymnasium.Space) -> bool:
    """Whether ``space`` holds single images ``[H, W, C]`` (a Box of rank 3)."""
    return isinstance(space, gymnasium.spaces.Box) and len(space.shape) == 3


def _constructor(env_id: str, mode: str, options: dict[str, Any]) -> Callable[[], gymnasium.Env]:
    """Resolves ``env_id`` into a picklable zero-argument constructor; validates early."""
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a string, got {env_id!r}")
    if env_id not in _FACTORIES:
        _load_entry_point(env_id)
    if env_id in _FACTORIES:
        factory = _FACTORIES[env_id]
        return functools.partial(_call_factory, factory, env_id, mode, _kwargs(factory, options))
    if env_id.startswith("gymnax:"):  # a JAX-native env stepped from the host
        from envs.jax_envs import make_gymnasium

        return functools.partial(make_gymnasium, env_id, **options)
    if ":" in env_id:
        return _module_constructor(env_id, mode, options)
    _register_ale()
    if _ATARI_ID.match(env_id) and env_id in gymnasium.registry:
        AtariOptions.from_kwargs(**options)  # fail fast on bad options
        return functools.partial(make_atari, env_id, mode=mode, **options)
    if env_id in gymnasium.registry:
        return functools.partial(gymnasium.make, env_id, **options)
    raise ValueError(_unknown_id_message(env_id))


def _load_entry_point(name: str) -> None:
    """Registers ``name`` from an installed package's ``dreamer.envs`` entry point, if any.

    The entry point is ``name = module:factory`` (a factory) or ``name = module`` (a module
    whose import registers ``name``).
    """
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
        try:
            loaded = entry.load()
        except (ImportError, AttributeError) as error:
            raise ValueError(
                f"cannot load environment {name!r} from the entry point '{entry.value}' "
                f"(group {ENTRY_POINT_GROUP!r}): {error}"
            ) from error
        if callable(loaded):
            register(name, loaded)
        return


def _module_constructor(env_id: str, mode: str, options: dict[str, Any]):
    module_name, _, attribute = env_id.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(_import_error_message(module_name, env_id, error)) from error
    factory = getattr(module, attribute, None)
    if callable(factory):
        return functools.partial(_call_factory, factory, env_id, mode, _kwargs(factory, options))
    if attribute in gymnasium.registry:  # gymnasium's own "module:EnvName-v0" form
        # The full id makes gymnasium import the module again in async workers.
        return functools.partial(gymnasium.make, env_id, **options)
    raise ValueError(
        f"module {module_name!r} has no callable {attribute!r} (from environment {env_id!r}); "
        "expected 'package.module:factory' with factory(**options) returning a gymnasium.Env"
    )


def _kwargs(factory: EnvFactory, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` without ``render_mode`` when the factory has no such parameter (videos ask
    for ``render_mode="rgb_array"``; such a factory's env keeps the render mode it sets)."""
    if "render_mode" not in options:
        return options
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return options
    if any(p.name == "render_mode" or p.kind is p.VAR_KEYWORD for p in parameters):
        return options
    return {k: v for k, v in options.items() if k != "render_mode"}


def _import_error_message(module_name: str, env_id: str, error: ImportError) -> str:
    top = module_name.split(".")[0]
    message = f"cannot import module {module_name!r} of environment {env_id!r}: {error}."
    clash = package_clash(top)
    if clash:
        return f"{message} {clash}"
    return (
        f"{message} The module must be importable by the Python that runs dreamer: run from "
        f"the folder that holds {top!r}, add that folder to PYTHONPATH (PYTHONPATH=/path/to/"
        "project dreamer train ...), or pip install your package."
    )


def package_clash(name: str) -> str | None:
    """A message naming the clash when ``name``, one of ``PROJECT_PACKAGES``, is found in
    more than one place on ``sys.path`` (the user's own package and the project's); else None.
    """
    if name not in PROJECT_PACKAGES:
        return None
    loaded = sys.modules.get(name)
    ours = Path(__file__).resolve().parents[1] / name
    found = []
    for entry in sys.path:
        folder = (Path(entry or ".") / name).resolve()
        if folder.is_dir() and folder not in found:
            found.append(folder)
    others = [folder for folder in found if folder != ours]
    if not others:
        return None
    where = getattr(loaded, "__file__", None)
    imported = f"Python imported {Path(where).parent}" if where else "both are on sys.path"
    return (
        f"Two packages are named {name!r}: yours in {others[0]} and the dreamer project's in "
        f"{ours}; {imported}. The project installs top-level packages named "
        f"{', '.join(repr(p) for p in PROJECT_PACKAGES)}: rename your package (for example "
        f"'my_{name}') and use that name in --env / --import."
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
    from envs.jax_envs import GymnasiumView, JaxEnv

    if isinstance(env, JaxEnv):  # a JAX-native env stepped from the host (DQN, PPO)
        env = GymnasiumView(env)
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
        "envs.register (in a module that the command line loads with --import MODULE) or "
        f"declared as a {ENTRY_POINT_GROUP!r} entry point by an installed package, an Atari "
        "game 'ALE/<Game>-v5', any gymnasium id (e.g. 'CartPole-v1'), or your own environment "
        "as 'package.module:factory' where factory(**options) returns a gymnasium.Env."
    )


def _version(env_id: str) -> int:
    match = re.search(r"-v(\d+)$", env_id)
    return int(match.group(1)) if match else -1


def _short_name(env_id: str) -> str:
    """'ALE/Pong-v5' -> 'pong': the part a person is likely to remember."""
    return re.sub(r"-v\d+$", "", env_id.rsplit("/", 1)[-1]).lower()
