"""The Atari-100k protocol (as used by EfficientZero and BBF) on top of ale-py.

``Atari100kEnv`` drives the emulator directly (``ale.act`` per frame) instead of stacking
gymnasium wrappers, so one agent step costs a single Python call plus ``action_repeat``
emulator frames, two screen grabs, one area resize and a frame-stack shift.

Budget: 100k agent steps at ``action_repeat=4`` are 400k emulator frames.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ale_py
import gymnasium
import numpy as np

from envs.resize import AreaResize

MODES = ("train", "eval")

_SCREEN_HW = (210, 160)  # Every ALE game renders 210 x 160 frames.


def check_mode(mode: str) -> str:
    """Returns ``mode`` if it is "train" or "eval", else raises a ValueError naming both."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


@dataclasses.dataclass(frozen=True, kw_only=True)
class AtariOptions:
    """Options of the Atari-100k protocol; the defaults are the protocol.

    The emulator always runs ``ALE/<Game>-v5`` with ``frameskip=1``: actions are repeated
    here. Fields left at ``None`` take their mode default (see ``resolve``): in "train" mode a
    life loss ends the episode and rewards are clipped; in "eval" mode neither.
    """

    noop_max: int = 30
    """After every game reset, a uniform number in [1, noop_max] of no-op frames (0: none)."""
    action_repeat: int = 4
    """Emulator frames per agent step; the observation max-pools the last two of them."""
    image_size: int = 96
    """Observations are area-resized to image_size x image_size."""
    grayscale: bool = False
    """One luminance channel instead of RGB."""
    frame_stack: int = 4
    """Number of most recent frames in an observation (stack axis first)."""
    terminal_on_life_loss: bool | None = None
    """Episode ends on a life loss, the game goes on at the next reset (default: train only)."""
    clip_rewards: bool | None = None
    """Rewards clipped to [-1, 1] (default: train only); info["raw_reward"] keeps the raw one."""
    max_episode_frames: int = 108_000
    """Emulator frames per game (no-op starts included) before truncation; 27k agent steps."""
    train_max_episode_frames: int | None = None
    """In "train" mode, cut games at this many frames instead (EfficientZero's code: 12,000,
    i.e. 3,000 agent steps); None: ``max_episode_frames`` in both modes."""
    repeat_action_probability: float = 0.0
    """ALE sticky-action probability; the protocol uses none."""
    full_action_space: bool = False
    """All 18 ALE actions instead of the game's minimal action set."""
    render_mode: str | None = None
    """Passed to ale-py ("rgb_array" for videos); not part of the protocol."""

    def __post_init__(self):
        positive = ("action_repeat", "image_size", "frame_stack", "max_episode_frames")
        for name in (*positive, "noop_max"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"AtariOptions.{name} must be an int, got {value!r}")
            if value < (1 if name in positive else 0):
                raise ValueError(f"AtariOptions.{name} must be >= {int(name in positive)}")
        for name in ("grayscale", "full_action_space", "terminal_on_life_loss", "clip_rewards"):
            value = getattr(self, name)
            optional = name in ("terminal_on_life_loss", "clip_rewards")
            if not (isinstance(value, bool) or (optional and value is None)):
                raise TypeError(f"AtariOptions.{name} must be a bool, got {value!r}")
        if not 0.0 <= self.repeat_action_probability <= 1.0:
            raise ValueError("AtariOptions.repeat_action_probability must be in [0, 1]")

    @classmethod
    def from_kwargs(cls, **options: Any) -> AtariOptions:
        """Like ``AtariOptions(**options)``, with an error that lists the valid options."""
        valid = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise TypeError(f"unknown Atari option(s) {unknown}; valid options are {valid}")
        return cls(**options)

    def resolve(self, mode: str) -> AtariOptions:
        """Returns a copy with the mode defaults filled in (no field is None afterwards)."""
        train = check_mode(mode) == "train"
        return dataclasses.replace(
            self,
            terminal_on_life_loss=_default(self.terminal_on_life_loss, train),
            clip_rewards=_default(self.clip_rewards, train),
            max_episode_frames=(
                self.train_max_episode_frames
                if train and self.train_max_episode_frames
                else self.max_episode_frames
            ),
        )

    @property
    def observation_shape(self) -> tuple[int, int, int, int]:
        """``[frame_stack, image_size, image_size, channels]``, channels 1 or 3."""
        size = self.image_size
        return (self.frame_stack, size, size, 1 if self.grayscale else 3)


def _default(value: bool | None, default: bool) -> bool:
    return default if value is None else value


class Atari100kEnv(gymnasium.Env):
    """An ``ALE/<Game>-v5`` game under the Atari-100k protocol (see ``AtariOptions``).

    Observations are uint8 ``[frame_stack, H, W, C]``, oldest frame first; after a reset every
    slot holds the reset frame. ``step`` returns the (possibly clipped) reward and an info
    dict with, on every step and reset:

    - ``lives``: lives left in the game;
    - ``episode_frame_number``: emulator frames since the game's reset (no-ops included);
    - ``raw_reward``: the unclipped reward of this step (0.0 on reset);
    - ``game_return``: the unclipped score of the current game so far, across lives;
    - ``game_over``: True when this step ends the game itself (game over or frame cap), so
      the next ``reset`` starts a new game. With ``terminal_on_life_loss`` an episode ends
      on every life loss, but only a step with ``game_over`` ends the game whose score is
      ``game_return``.

    Seeding: ``reset(seed=s)`` reseeds the emulator and the no-op RNG. ``self.ale`` is the
    emulator (``ale_py.ALEInterface``).
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 30}

    def __init__(self, env_id: str, options: AtariOptions, *, mode: str = "train"):
        opts = options.resolve(mode)
        self._ale_env = gymnasium.make(
            env_id,
            frameskip=1,
            repeat_action_probability=opts.repeat_action_probability,
            full_action_space=opts.full_action_space,
            max_num_frames_per_episode=opts.max_episode_frames,
            obs_type="grayscale" if opts.grayscale else "rgb",
            render_mode=opts.render_mode,
        ).unwrapped
        self.env_id, self.options, self.mode = env_id, opts, mode
        self.render_mode = opts.render_mode
        self.ale = ale = self._ale_env.ale
        actions = ale.getLegalActionSet() if opts.full_action_space else ale.getMinimalActionSet()
        self._action_set = list(actions)
        self.action_space = gymnasium.spaces.Discrete(len(self._action_set))
        self.observation_space = gymnasium.spaces.Box(
            0, 255, shape=opts.observation_shape, dtype=np.uint8
        )
        channels = opts.observation_shape[-1]
        self._grab = ale.getScreenGrayscale if opts.grayscale else ale.getScreenRGB
        raw_shape = _SCREEN_HW if opts.grayscale else (*_SCREEN_HW, 3)
        self._raw = np.zeros((2, *raw_shape), np.uint8)  # the last two frames of a step
        self._resize = AreaResize(_SCREEN_HW, (opts.image_size,) * 2, channels)
        self._stack = np.zeros(opts.observation_shape, np.uint8)
        self._lives = 0
        self._game_return = 0.0
        self._new_game = True  # whether the next reset must reset the game itself

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        ale = self.ale
        if seed is None and not self._new_game and self.options.terminal_on_life_loss:
            # Lost a life: continue the same game with one no-op step (DQN's EpisodicLife).
            frame, reward = self._repeat(ale_py.Action.NOOP)
            self._game_return += reward
            if ale.game_over():
                frame = self._new_game_frame(None)
        else:
            frame = self._new_game_frame(seed)
        self._new_game = False
        self._lives = ale.lives()
        self._resize(frame, self._stack[0])
        self._stack[1:] = self._stack[0]
        return self._stack.copy(), self._info(0.0)

    def _new_game_frame(self, seed: int | None) -> np.ndarray:
        """Resets the game (reseeding when ``seed`` is given), plays the no-op start."""
        ale = self.ale
        self._ale_env.reset(seed=seed)  # reseeds the emulator if seed is given
        noops = self.options.noop_max
        noops = int(self.np_random.integers(1, noops + 1)) if noops else 0
        for _ in range(noops):
            ale.act(ale_py.Action.NOOP)
            if ale.game_over():
                ale.reset_game()
        self._game_return = 0.0
        self._grab(self._raw[1])
        return self._raw[1]

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        ale = self.ale
        frame, raw_reward = self._repeat(self._action_set[action])
        self._game_return += raw_reward
        game_over = ale.game_over(with_truncation=False)
        truncated = ale.game_truncated()
        lives = ale.lives()
        life_lost = 0 < lives < self._lives  # as DQN: the last life's loss is the game over
        self._lives = lives
        self._new_game = game_over or truncated
        terminated = game_over or (life_lost and self.options.terminal_on_life_loss)
        reward = max(-1.0, min(1.0, raw_reward)) if self.options.clip_rewards else raw_reward

        stack = self._stack
        stack[:-1] = stack[1:]
        self._resize(frame, stack[-1])
        return stack.copy(), reward, terminated, truncated, self._info(raw_reward)

    def _repeat(self, ale_action: ale_py.Action) -> tuple[np.ndarray, float]:
        """Plays ``action_repeat`` frames (fewer if the game ends); returns the pooled frame.

        The frame is the max over the last two frames; a step cut short by the end of the game
        returns the last frame alone.
        """
        ale, raw, last = self.ale, self._raw, self.options.action_repeat - 1
        reward = 0
        for i in range(last + 1):
            reward += ale.act(ale_action)
            if i == last - 1:
                self._grab(raw[0])
            if i == last or ale.game_over():
                break
        self._grab(raw[1])
        if i == last and last > 0:
            np.maximum(raw[0], raw[1], out=raw[1])
        return raw[1], float(reward)

    def _info(self, raw_reward: float) -> dict[str, Any]:
        return {
            "lives": self._lives,
            "episode_frame_number": self.ale.getEpisodeFrameNumber(),
            "raw_reward": raw_reward,
            "game_return": self._game_return,
            "game_over": self._new_game,
        }

    def render(self) -> np.ndarray | None:
        """The current full-size screen (with ``render_mode="rgb_array"``)."""
        return self._ale_env.render()

    def close(self) -> None:
        self._ale_env.close()

    def __str__(self) -> str:
        return f"<{type(self).__name__}<{self.env_id}>>"


def make_atari(env_id: str, *, mode: str = "train", **options: Any) -> Atari100kEnv:
    """Makes ``env_id`` (an ``ALE/<Game>-v5`` id) under the Atari-100k protocol.

    ``options`` are ``AtariOptions`` fields; unknown ones raise a TypeError listing the valid
    ones.
    """
    return Atari100kEnv(env_id, AtariOptions.from_kwargs(**options), mode=check_mode(mode))
