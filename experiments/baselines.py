"""Presets of the model-free baselines: ``--algo dqn|ppo --preset cartpole|atari100k|debug``.

Each preset is a published configuration; its docstring names the source and any place where
this implementation cannot be identical.
"""

from __future__ import annotations

import dataclasses

from dreamer.agents.baselines.config import NetworkConfig
from dreamer.agents.baselines.dqn.config import DQNConfig, DQNParams
from dreamer.agents.baselines.ppo.config import PPOConfig, PPOParams
from dreamer.core.config import EnvConfig, RunConfig


def _cartpole_run(env_steps: int) -> RunConfig:
    return RunConfig(
        env_steps=env_steps,
        eval_every=2_500,
        eval_episodes=10,
        final_eval_episodes=10,
        log_every=1_000,
        checkpoint_every=10_000,
    )


def _atari_run() -> RunConfig:
    return RunConfig(
        env_steps=100_000,
        eval_every=10_000,
        eval_episodes=10,
        final_eval_episodes=32,
        log_every=1_000,
        checkpoint_every=25_000,
    )


def dqn_cartpole() -> DQNConfig:
    """RL Baselines3 Zoo's tuned DQN for CartPole-v1 (``hyperparams/dqn.yml``), SB3 defaults.

    lr 2.3e-3 (Adam, eps 1e-8), batch 64, buffer 100k, learning_starts 1000, gamma 0.99,
    target_update_interval 10 env steps (tau 1), train_freq 256, gradient_steps 128,
    exploration 1.0 -> 0.04 over 0.16 x 5e4 = 8000 env steps, net [256, 256] ReLU with
    PyTorch's default init, Huber loss, max_grad_norm 10, n_timesteps 5e4. Like SB3's DQN:
    no double, no dueling, one-step targets, uniform replay. The epsilon decay is set in env
    steps, so with ``--steps`` other than 5e4 it does not rescale as SB3's fraction would.
    """
    return DQNConfig(
        env=EnvConfig(id="CartPole-v1", num_envs=1),
        run=_cartpole_run(50_000),
        network=NetworkConfig(kind="mlp", hidden=(256, 256), activation="relu", init="torch"),
        dqn=DQNParams(
            lr=2.3e-3,
            adam_eps=1e-8,
            max_grad_norm=10.0,
            batch_size=64,
            buffer_size=100_000,
            learning_starts=1_000,
            gamma=0.99,
            n_step=1,
            double=False,
            dueling=False,
            prioritized=False,
            target_update_interval=10,
            train_freq=256,
            gradient_steps=128,
            epsilon_start=1.0,
            epsilon_final=0.04,
            epsilon_decay_start=0,
            epsilon_decay_steps=8_000,
            eval_epsilon=0.0,
        ),
    )


def _debug_run() -> RunConfig:
    """The EfficientZero ``debug`` preset's budget and evaluation protocol."""
    return RunConfig(
        env_steps=200,
        eval_every=100,
        eval_episodes=2,
        final_eval_episodes=2,
        log_every=50,
        checkpoint_every=100,
        progress=False,
    )


def dqn_debug() -> DQNConfig:
    """A seconds-long DQN run (the cartpole preset, scaled down), for smoke tests."""
    base = dqn_cartpole()
    return dataclasses.replace(
        base,
        run=_debug_run(),
        network=dataclasses.replace(base.network, hidden=(32,)),
        dqn=dataclasses.replace(
            base.dqn,
            batch_size=16,
            buffer_size=1_000,
            learning_starts=50,
            target_update_interval=10,
            train_freq=4,
            gradient_steps=1,
            epsilon_decay_steps=100,
        ),
    )


def dqn_atari100k() -> DQNConfig:
    """DrQ(eps) (Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice").

    As in Dopamine's ``labs/atari_100k/configs/DrQ_eps.gin``: DQN with double-DQN targets
    and dueling heads, 10-step returns, uniform replay, gamma 0.99, batch 32, Adam lr 1e-4 /
    eps 1.5e-4 (from DER), one update per env step from 1600 env steps on, target network =
    online network (target_update_period 1), epsilon 1 -> 0.01 linearly over 5000 env steps
    after the warm-up, evaluation epsilon 0.001, DrQ random shifts of +-4 pixels, Huber
    loss, Nature CNN torso with 512-unit dueling streams. Differences: observations are this
    project's Atari-100k protocol (96x96 RGB, 4-frame stack) rather than Dopamine's 84x84
    grayscale; the replay keeps all 100k steps (Dopamine: 1M capacity); the final evaluation
    runs 32 episodes (DrQ(eps) reports 100).
    """
    return DQNConfig(
        env=EnvConfig(id="ALE/Pong-v5", num_envs=1),
        run=_atari_run(),
        network=NetworkConfig(kind="conv", conv_dense=0, head_hidden=(512,), activation="relu"),
        dqn=DQNParams(
            lr=1e-4,
            adam_eps=1.5e-4,
            max_grad_norm=0.0,
            batch_size=32,
            buffer_size=120_000,
            learning_starts=1_600,
            gamma=0.99,
            n_step=10,
            double=True,
            dueling=True,
            prioritized=False,
            target_update_interval=1,
            train_freq=1,
            gradient_steps=1,
            epsilon_start=1.0,
            epsilon_final=0.01,
            epsilon_decay_start=1_600,
            epsilon_decay_steps=5_000,
            eval_epsilon=0.001,
            augment_pad=4,
        ),
    )


def ppo_cartpole() -> PPOConfig:
    """RL Baselines3 Zoo's tuned PPO for CartPole-v1 (``hyperparams/ppo.yml``), SB3 defaults.

    n_envs 8, n_steps 32, batch_size 256, n_epochs 20, gamma 0.98, gae_lambda 0.8,
    ent_coef 0.0, learning_rate lin_1e-3, clip_range lin_0.2, n_timesteps 1e5; SB3's
    MlpPolicy defaults: separate policy and value nets [64, 64] tanh, orthogonal init
    (policy head gain 0.01, value head 1), Adam eps 1e-5, max_grad_norm 0.5, no value clip,
    vf_coef 0.5 on the un-halved MSE (1.0 here, where the value loss is 0.5 MSE), advantages
    normalised per minibatch, time-limit truncations bootstrapped with V(final obs).
    """
    return PPOConfig(
        env=EnvConfig(id="CartPole-v1", num_envs=8),
        run=_cartpole_run(100_000),
        network=NetworkConfig(kind="mlp", hidden=(64, 64), activation="tanh", init="orthogonal"),
        ppo=PPOParams(
            lr=1e-3,
            anneal_lr=True,
            adam_eps=1e-5,
            max_grad_norm=0.5,
            num_steps=32,
            minibatch_size=256,
            epochs=20,
            gamma=0.98,
            gae_lambda=0.8,
            clip=0.2,
            anneal_clip=True,
            clip_value=False,
            ent_coef=0.0,
            vf_coef=1.0,
            normalize_advantage=True,
            share_torso=False,
        ),
    )


def ppo_debug() -> PPOConfig:
    """A seconds-long PPO run (the cartpole preset, scaled down), for smoke tests: 2 envs x
    25 steps per rollout, so the 200-step budget is 4 whole rollouts."""
    base = ppo_cartpole()
    return dataclasses.replace(
        base,
        env=dataclasses.replace(base.env, num_envs=2, num_eval_envs=2),
        run=_debug_run(),
        network=dataclasses.replace(base.network, hidden=(32,)),
        ppo=dataclasses.replace(base.ppo, num_steps=25, minibatch_size=25, epochs=2),
    )


def ppo_atari100k() -> PPOConfig:
    """The standard Atari PPO (Schulman et al. 2017; cleanrl ``ppo_atari.py``) at 100k steps.

    8 envs x 128 steps, 4 epochs of 4 minibatches (256), Adam lr 2.5e-4 annealed linearly to
    0 (eps 1e-5), gamma 0.99, GAE lambda 0.95, clip 0.1 (policy and value), entropy 0.01,
    value coefficient 0.5 (on 0.5 MSE), max_grad_norm 0.5, advantage normalisation, Nature
    CNN shared by policy and value with orthogonal init. Only the budget differs from the
    10M-frame original: 100k agent steps (about 98 updates of 1024 steps), on this project's
    Atari-100k protocol observations (96x96 RGB, 4-frame stack).
    """
    return PPOConfig(
        env=EnvConfig(id="ALE/Pong-v5", num_envs=8),
        run=_atari_run(),
        network=NetworkConfig(kind="conv", conv_dense=512, activation="relu", init="orthogonal"),
        ppo=PPOParams(
            lr=2.5e-4,
            anneal_lr=True,
            adam_eps=1e-5,
            max_grad_norm=0.5,
            num_steps=128,
            minibatch_size=256,
            epochs=4,
            gamma=0.99,
            gae_lambda=0.95,
            clip=0.1,
            anneal_clip=False,
            clip_value=True,
            ent_coef=0.01,
            vf_coef=0.5,
            normalize_advantage=True,
            share_torso=True,
        ),
    )


PRESETS = {
    "dqn": {"cartpole": dqn_cartpole, "atari100k": dqn_atari100k, "debug": dqn_debug},
    "ppo": {"cartpole": ppo_cartpole, "atari100k": ppo_atari100k, "debug": ppo_debug},
}


def reach_and_stay(eval_curve: list[list[float]], threshold: float) -> int | None:
    """First env step from which every later evaluation is >= ``threshold`` (None: never)."""
    first = None
    for step, value in eval_curve:
        if value < threshold:
            first = None
        elif first is None:
            first = int(step)
    return first


def main(argv: list[str] | None = None) -> None:
    """Train a baseline preset on several seeds, one after another, and print when each run
    reached and kept an evaluation return >= ``--threshold`` (the CartPole sample-efficiency
    check of the baselines). Finished runs in ``--out`` are reused, interrupted ones resumed::

        python -m experiments.baselines --algo ppo --seeds 0,1,2 --out runs/baselines
    """
    import argparse
    from pathlib import Path

    from dreamer.cli import parse_seeds
    from dreamer.core.configtree import ConfigError, replace_path
    from dreamer.loops import algos
    from dreamer.shell.runlog import CONFIG_FILE, SUMMARY_FILE, device_description, read_json

    parser = argparse.ArgumentParser(prog="python -m experiments.baselines")
    parser.add_argument("--algo", choices=sorted(PRESETS), required=True)
    parser.add_argument("--preset", default="cartpole")
    parser.add_argument("--seeds", default="0,1,2", help="seeds: 0,1,2 or a range 0-9")
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--out", default="runs/baselines")
    args = parser.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
    except ConfigError as e:
        parser.error(str(e))
    algo = algos.get(args.algo)
    rows = []
    for seed in seeds:
        cfg = replace_path(PRESETS[args.algo][args.preset](), "run.seed", seed)
        run_dir = Path(args.out) / f"{cfg.env.id.replace('/', '-')}__{args.algo}__{seed}"
        if (run_dir / SUMMARY_FILE).exists():  # finished before: reuse its summary
            summary = read_json(run_dir / SUMMARY_FILE)
        else:  # new, or interrupted (then it continues from its newest checkpoint)
            summary = algo.train(cfg, run_dir, resume=(run_dir / CONFIG_FILE).exists())
        reached = reach_and_stay(summary["eval_curve"], args.threshold)
        rows.append((seed, reached, summary["wall_seconds"], run_dir))
    print(f"\n{args.algo} --preset {args.preset} on {cfg.env.id}; device {device_description()}")
    print(f"{'seed':>4}  {'reach & stay >= ' + str(args.threshold):>24}  {'wall s':>7}  run folder")
    for seed, reached, wall, run_dir in rows:
        shown = "never" if reached is None else str(reached)
        print(f"{seed:>4}  {shown:>24}  {wall:>7.0f}  {run_dir}")


if __name__ == "__main__":
    main()
