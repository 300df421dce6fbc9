"""EfficientZero presets: ``atari100k`` (the paper's recipe), ``cartpole``, ``debug``."""

from __future__ import annotations

from dreamer.config import (
    Config,
    EnvConfig,
    LoopConfig,
    ModelConfig,
    OptimConfig,
    ReplayConfig,
    RunConfig,
    SearchConfig,
)


def atari100k() -> Config:
    """EfficientZero-V1 on Atari 100k (Ye et al. 2021, App. A / the official config).

    100k agent steps (400k frames), 1 update per env step after 2k warm-up steps (100k
    updates in all, as the paper's 100k training steps), batch 256, K=5, n=5, gamma 0.997,
    50 simulations, SGD(0.9) lr 0.2 with 1k warm-up and x0.1 step decay, weight decay 1e-4,
    target network refreshed every 200 updates, reanalyse 99% of policy targets, off-policy
    correction (horizon shrinks every 30k env steps of age), priorities alpha 0.6 / beta 0.4.
    """
    return Config(
        env=EnvConfig(id="ALE/Pong-v5", num_envs=1, num_eval_envs=8),
        run=RunConfig(
            env_steps=100_000,
            eval_every=10_000,
            eval_episodes=8,
            final_eval_episodes=32,
            log_every=1_000,
            checkpoint_every=10_000,
        ),
        model=ModelConfig(
            kind="conv",
            channels=64,
            num_blocks=1,
            reduced_channels=16,
            head_hidden=(32,),
            lstm_hidden=512,
            lstm_horizon=5,
            value_support=300,
            reward_support=300,
            norm="batch",
            proj_hidden=1024,
            proj_out=1024,
            pred_hidden=512,
        ),
        search=SearchConfig(policy="muzero", num_simulations=50, qtransform="tree_min_max"),
        replay=ReplayConfig(
            capacity=100_000,
            batch_size=256,
            unroll_steps=5,
            td_steps=5,
            discount=0.997,
            reanalyze_fraction=0.99,
        ),
        optim=OptimConfig(
            optimizer="sgd",
            learning_rate=0.2,
            momentum=0.9,
            weight_decay=1e-4,
            warmup_updates=1_000,
            decay="step",
            decay_updates=100_000,
            decay_rate=0.1,
            max_grad_norm=5.0,
            target_update_every=200,
        ),
        loop=LoopConfig(warmup_steps=2_000, replay_ratio=1.0),
    )


def cartpole() -> Config:
    """CartPole-v1 in 5k real env steps on a 2-core CPU (MLP trunk, LayerNorm, Adam).

    Long n-step value targets (n=50 at gamma 0.99) let the value see the slow drift of the
    cart towards the edge, the failure that shorter horizons leave undetected. With two
    actions, Dirichlet(0.3) root noise is nearly always one-sided; Dirichlet(1) at weight 0.5
    keeps exploring the recovery manoeuvres that a confident prior would never try, and so
    does acting at visit-count temperature 1 for the whole (short) budget; evaluation is
    greedy.
    """
    return Config(
        env=EnvConfig(id="CartPole-v1", num_envs=4, num_eval_envs=8),
        run=RunConfig(
            env_steps=5_000,
            eval_every=500,
            eval_episodes=8,
            final_eval_episodes=8,
            log_every=250,
            checkpoint_every=1_000,
        ),
        model=ModelConfig(
            kind="auto",  # MLP on CartPole's vectors, conv trunk on an image env
            latent_dim=64,
            hidden=(128,),
            head_hidden=(64,),
            lstm_hidden=64,
            lstm_horizon=5,
            value_support=20,
            reward_support=5,
            norm="layer",
            proj_hidden=128,
            proj_out=128,
            pred_hidden=64,
        ),
        search=SearchConfig(
            policy="muzero",
            num_simulations=32,
            dirichlet_alpha=1.0,
            dirichlet_fraction=0.5,
            temperatures=(1.0,),
            temperature_milestones=(),
        ),
        replay=ReplayConfig(
            capacity=10_000,
            batch_size=128,
            unroll_steps=5,
            td_steps=50,
            discount=0.99,
            reanalyze_fraction=0.25,
            reanalyze_simulations=16,
        ),
        optim=OptimConfig(
            optimizer="adam",
            learning_rate=1e-3,
            weight_decay=1e-5,
            warmup_updates=100,
            decay="cosine",
            target_update_every=100,
        ),
        loop=LoopConfig(warmup_steps=400, replay_ratio=1.0),
    )


def debug() -> Config:
    """A seconds-long run of the whole loop on CartPole (or any small env), for smoke tests."""
    base = cartpole()
    return Config(
        env=EnvConfig(id="CartPole-v1", num_envs=2, num_eval_envs=2),
        run=RunConfig(
            env_steps=200,
            eval_every=100,
            eval_episodes=2,
            final_eval_episodes=2,
            log_every=50,
            checkpoint_every=100,
            progress=False,
        ),
        model=ModelConfig(
            kind="auto",  # MLP on vectors, a small conv trunk on images
            channels=16,
            reduced_channels=4,
            latent_dim=16,
            hidden=(32,),
            head_hidden=(16,),
            lstm_hidden=16,
            value_support=10,
            reward_support=5,
            norm="layer",
            proj_hidden=32,
            proj_out=32,
            pred_hidden=16,
        ),
        search=SearchConfig(num_simulations=4),
        replay=ReplayConfig(
            capacity=1_000,
            batch_size=8,
            unroll_steps=3,
            td_steps=3,
            discount=0.99,
            reanalyze_fraction=0.5,
            reanalyze_simulations=2,
        ),
        optim=base.optim,
        loop=LoopConfig(warmup_steps=50, replay_ratio=0.25),
    )


PRESETS = {"efficientzero": {"atari100k": atari100k, "cartpole": cartpole, "debug": debug}}
