"""Greedy evaluation, its videos, and the env-construction glue shared by every algorithm
(shell code)."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import gymnasium
import numpy as np

from dreamer.core.config import EnvConfig
from dreamer.core.configtree import ConfigError
from dreamer.core.errors import EnvOutputError
from dreamer.shell.envcheck import non_finite
from dreamer.shell.imports import import_modules, project_package

VIDEO_FORMATS = ("mp4", "gif")


@dataclasses.dataclass(frozen=True)
class Video:
    """Where and how to record evaluation episodes: ``folder/episode-<k>.<format>``."""

    folder: Path
    """Folder of the video files (created if missing)."""
    format: Literal["mp4", "gif"] = "mp4"
    """``mp4`` (H.264 through imageio-ffmpeg) or ``gif``."""
    fps: int = 30
    """Frames per second of the files."""


def make_vector_env(env: EnvConfig, *, num_envs: int, seed: int, mode: str):
    """``envs.make_vector`` with configuration errors turned into one clear message.

    The modules of ``env.imports`` are imported first; single images ``[H, W, C]`` become
    one-frame stacks ``[1, H, W, C]``, the shape every algorithm's networks take.
    """
    return _make(env, seed=seed, mode=mode, num_envs=num_envs)


def evaluate_policy(
    env: EnvConfig,
    act: Callable[[np.ndarray], np.ndarray],
    *,
    episodes: int,
    seed: int,
    max_steps: int = 0,
    video: Video | None = None,
) -> list[float]:
    """Run ``episodes`` evaluation episodes of ``act(obs[N]) -> actions[N]``.

    Each of the ``num_eval_envs`` environments plays a fixed quota of episodes, so the result
    does not favour short episodes. ``max_steps`` > 0 cuts an episode after that many steps
    (its return so far counts). Returns the undiscounted, unclipped episode returns. With
    ``video``, one environment plays the episodes one after another and each is recorded
    from its rendered frames (``render_mode="rgb_array"``).
    """
    num_envs = 1 if video else min(env.num_eval_envs, episodes)
    quota = np.full(num_envs, episodes // num_envs)
    quota[: episodes % num_envs] += 1
    if video:
        venv = _make(env, seed=seed, mode="eval", num_envs=None, video=video)
    else:
        venv = make_vector_env(env, num_envs=num_envs, seed=seed, mode="eval")
    try:
        obs, _ = venv.reset(seed=seed)
        running = np.zeros(num_envs)
        length = np.zeros(num_envs, dtype=int)
        done_count = np.zeros(num_envs, dtype=int)
        returns: list[float] = []
        while (done_count < quota).any():
            obs, reward, terminated, truncated, _ = venv.step(act(obs))
            problem = non_finite(obs, reward)
            if problem is not None:
                raise EnvOutputError(
                    f"environment {env.id} returned {problem} during an evaluation; fix the "
                    "environment (or wrap it to replace non-finite values)."
                )
            if max_steps > 0:  # cut episodes at max_steps: those envs start over
                cut = (length + 1 >= max_steps) & ~(terminated | truncated)
                truncated = truncated | cut
                obs = _reset_some(venv, obs, np.flatnonzero(cut))
            running += reward
            length += 1
            for i in np.flatnonzero(terminated | truncated):
                if done_count[i] < quota[i]:
                    returns.append(float(running[i]))
                    done_count[i] += 1
                running[i] = 0.0
                length[i] = 0
        return returns
    finally:
        venv.close()


def _reset_some(venv, obs: np.ndarray, which: np.ndarray) -> np.ndarray:
    """Reset the sub-environments ``which`` (their RNGs continue); returns the new batch."""
    if len(which) == 0:
        return obs
    mask = np.zeros(venv.num_envs, bool)
    mask[which] = True
    fresh, _ = venv.reset(options={"reset_mask": mask})  # the others keep their observation
    return fresh


def _make(
    env: EnvConfig, *, seed: int, mode: str, num_envs: int | None, video: Video | None = None
):
    import_modules(env.imports)
    envs = project_package("envs")
    try:
        if video is None:
            return envs.make_vector(
                env.id,
                num_envs,
                seed=seed,
                mode=mode,
                vectorization=env.vectorization,
                stack_images=True,
                **env.options,
            )
        # Frames are drawn off-screen: no display needed (pygame-drawn envs look for one).
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        options = dict(env.options, render_mode="rgb_array")
        one = envs.make(env.id, seed=seed, mode=mode, stack_images=True, **options)
    except (ValueError, TypeError, ImportError, AttributeError) as e:
        raise ConfigError(f"cannot make environment {env.id!r}: {e}") from e
    if one.render_mode != "rgb_array":
        one.close()
        raise ConfigError(
            f"environment {env.id!r} does not render frames for a video (its render_mode is "
            f"{one.render_mode!r}): give your factory a render_mode parameter and pass it to "
            "the env, which must return an [H, W, 3] uint8 array from render() when "
            'render_mode="rgb_array".'
        )
    recorder = EpisodeRecorder(one, video)
    return gymnasium.vector.SyncVectorEnv(
        [lambda: recorder], autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP
    )


class EpisodeRecorder(gymnasium.Wrapper):
    """Records the rendered frames of each episode into ``video.folder/episode-<k>.<fmt>``."""

    def __init__(self, env: gymnasium.Env, video: Video):
        super().__init__(env)
        if video.format not in VIDEO_FORMATS:
            raise ConfigError(f"video format {video.format!r}: choose one of {VIDEO_FORMATS}.")
        self.video = video
        self.paths: list[Path] = []
        self._frames: list[np.ndarray] = []

    def reset(self, **kwargs: Any):
        out = self.env.reset(**kwargs)
        self._frames = [self.env.render()]
        return out

    def step(self, action: Any):
        out = self.env.step(action)
        self._frames.append(self.env.render())
        if out[2] or out[3]:
            self._write()
        return out

    def _write(self) -> None:
        import imageio.v3 as iio

        folder = self.video.folder
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"episode-{len(self.paths)}.{self.video.format}"
        frames = np.stack([_displayable(f) for f in self._frames])
        if self.video.format == "mp4":
            with warnings.catch_warnings():
                # imageio-ffmpeg starts ffmpeg with fork + exec (in C): the child runs no
                # Python, so JAX's warning about forking a multithreaded process is moot.
                warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
                iio.imwrite(path, frames, plugin="FFMPEG", fps=self.video.fps, macro_block_size=1)
        else:
            iio.imwrite(path, frames, plugin="pillow", duration=1000 / self.video.fps, loop=0)
        self.paths.append(path)
        self._frames = []


def _displayable(frame: Any, min_side: int = 128) -> np.ndarray:
    """An ``[H, W, 3]`` uint8 frame with even sides (H.264 needs them), small frames enlarged
    by pixel repetition so that the shorter side is at least ``min_side``."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=-1)
    if frame.ndim != 3 or frame.shape[-1] not in (1, 3, 4):
        raise ConfigError(f"render() returned shape {frame.shape}; a video needs [H, W, 3].")
    frame = np.broadcast_to(frame[..., :3], (*frame.shape[:2], 3)).astype(np.uint8)
    scale = -(-min_side // min(frame.shape[:2]))
    if scale > 1:
        frame = frame.repeat(scale, axis=0).repeat(scale, axis=1)
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
