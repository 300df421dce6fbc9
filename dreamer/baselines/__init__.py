"""Model-free baselines behind the same run-folder contract as EfficientZero.

- ``dqn``: the DQN family (double, dueling, n-step, prioritised replay, DrQ augmentation);
  pure parts in ``dqn_learning`` and ``replay``.
- ``ppo``: PPO with GAE, clipped policy and (optionally) value objectives; pure parts in
  ``ppo_learning``.
- ``networks``: MLP and Nature-CNN torsos, Q-network and actor-critic heads.
- ``replay``: numpy replay with frames stored once, n-step returns, proportional priorities.
- ``loop``: run-folder bookkeeping shared by both training loops (metrics, eval, checkpoints).
- ``config``: the frozen config records; presets live in ``experiments/baselines.py``.
"""
