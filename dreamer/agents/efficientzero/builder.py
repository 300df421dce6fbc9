"""EfficientZero's builder: every part of a run made from its config and its env's spaces.

Both loops build their agent here, and only here: the host loop (``dreamer.loops.host``, for
gymnasium envs) from the spaces of a probe env, the fused loop (``dreamer.loops.fused``, for
JAX-native envs) from the JAX env's spaces. ``Spaces`` reads what the agent needs to know about
an env; ``Parts`` holds the network, replay, learner and actor of a config and their jitted
forms; ``validate`` refuses settings that are valid one by one but cannot train together.
"""

from __future__ import annotations

import gymnasium as gym
import jax
import numpy as np

from dreamer.agents.efficientzero.actor import make_actor
from dreamer.agents.efficientzero.config import Config, ConfigError
from dreamer.agents.efficientzero.learner import LearnerState, make_learner
from dreamer.agents.efficientzero.networks import make_network
from dreamer.agents.efficientzero.replay import Replay, ReplayState
from dreamer.core.errors import ObservationSpaceError
from dreamer.core.sharding import DataParallel

ALGO = "efficientzero"
"""The agent's name in run folders (``config.json``) and on the command line (``--algo``)."""

__all__ = ["ALGO", "Parts", "Spaces", "validate"]


class Spaces:
    """What the agent needs to know about an environment, read once from its spaces."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, env_id: str):
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ObservationSpaceError(
                f"{env_id} has action space {action_space}; EfficientZero needs a Discrete "
                "one. Wrap the environment to discretise its actions."
            )
        if not isinstance(observation_space, gym.spaces.Box):
            raise ObservationSpaceError(
                f"{env_id} has observation space {observation_space}; the networks take a Box "
                "of shape [D] or uint8 frame stacks [S, H, W, C]."
            )
        self.obs_shape = tuple(observation_space.shape)
        self.obs_dtype = observation_space.dtype
        self.num_actions = int(action_space.n)
        self.image = len(self.obs_shape) == 4
        if self.image and self.obs_dtype != np.uint8:
            raise ObservationSpaceError(f"{env_id}: frame stacks must be uint8.")
        # A one-frame stack [1, H, W, C] (a single-image env) is stored whole, as vectors are.
        self.frame_stack = self.obs_shape[0] if self.image else 1
        self.frame_shape = self.obs_shape[1:] if self.frame_stack > 1 else self.obs_shape
        self.frame_dtype = np.uint8 if self.image else np.float32


class Parts:
    """Every part of a run built from its config and its env's spaces: network, replay,
    learner (with its reanalysis and dream searches), actor (the acting search), and their
    jitted forms (replay and learner state are donated, never copied). With
    ``loop.devices`` > 1 the learner state and replay are replicated over the local devices
    and each batch is split over them (``parallel``, ``dreamer.core.sharding``)."""

    def __init__(self, cfg: Config, spaces: Spaces):
        self.cfg = cfg
        self.spaces = sp = spaces
        self.net = make_network(cfg.model, sp.obs_shape, sp.num_actions)
        self.replay = Replay(
            cfg.replay,
            num_envs=cfg.env.num_envs,
            frame_shape=sp.frame_shape,
            frame_dtype=sp.frame_dtype,
            num_actions=sp.num_actions,
            frame_stack=sp.frame_stack,
            age_unit=cfg.replay.off_policy_age_ratio * cfg.run.env_steps,
        )
        self.parallel = DataParallel(cfg.loop.devices, batch_size=cfg.replay.batch_size)
        self.learner = make_learner(cfg, self.net, self.replay, self.parallel.shard)
        self.act = make_actor(cfg, self.net)
        self.add = jax.jit(self.learner.add_step, donate_argnums=1)
        self.end_episodes = jax.jit(self.replay.end_episodes, donate_argnums=0)
        self.learn = jax.jit(self.learner.learn, donate_argnums=(0, 1))
        self.refresh = jax.jit(self.learner.refresh, donate_argnums=1)
        self.example_obs = np.zeros((1,) + sp.obs_shape, sp.obs_dtype)
        self._init = jax.jit(self.learner.init)
        self._init_replay = jax.jit(self.replay.init)

    def new_learner(self, seed: int | None = None) -> LearnerState:
        """A new learner state from ``seed`` (default: the config's ``run.seed``)."""
        seed = self.cfg.run.seed if seed is None else seed
        return self.parallel.replicate(self._init(jax.random.PRNGKey(seed), self.example_obs))

    def new_replay(self) -> ReplayState:
        return self.parallel.replicate(self._init_replay())


def validate(cfg: Config) -> None:
    """Settings that are valid one by one but cannot train together; a clear error."""
    if cfg.warmup_steps >= cfg.run.env_steps and cfg.loop.extra_updates == 0:
        raise ConfigError(
            f"the warm-up of {cfg.warmup_steps} env steps (loop.warmup_steps="
            f"{cfg.loop.warmup_steps}, loop.warmup_fraction={cfg.loop.warmup_fraction}) is not "
            f"below run.env_steps={cfg.run.env_steps}: the agent would never learn. Lower "
            "loop.warmup_steps / loop.warmup_fraction or raise --steps."
        )
    need = cfg.env.num_envs * (cfg.replay.unroll_steps + 1)
    if 0 < cfg.run.checkpoint_every < need:
        raise ConfigError(
            f"run.checkpoint_every={cfg.run.checkpoint_every} is too small: each checkpoint "
            "cuts the running episodes, and a sequence needs replay.unroll_steps + 1 steps "
            f"of one episode in each of the {cfg.env.num_envs} environments. Set "
            f"run.checkpoint_every >= {need} (or 0: only at the end)."
        )
    if cfg.warmup_steps < need:
        raise ConfigError(
            f"a warm-up of {cfg.warmup_steps} env steps is too small: learning needs one "
            f"complete sequence of replay.unroll_steps + 1 steps in each of the "
            f"{cfg.env.num_envs} environments first. Set loop.warmup_steps >= {need}."
        )
