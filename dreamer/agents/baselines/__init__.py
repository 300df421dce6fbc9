"""Model-free baselines behind the same run-folder contract as EfficientZero.

One folder per agent, each with its config, networks, learning (pure, jitted) and builder:

- ``dqn``: the DQN family (double, dueling, n-step, prioritised replay, DrQ augmentation), with
  its numpy ``replay`` (frames stored once, n-step returns, proportional priorities);
- ``ppo``: PPO with GAE, clipped policy and (optionally) value objectives.

What both share sits here: ``config`` (the ``network`` section), ``networks`` (MLP and
Nature-CNN torsos, output heads) and ``vector`` (action counts, final observations of vector
envs). Their training loops are ``dreamer.loops.dqn`` and ``dreamer.loops.ppo``; presets live
in ``experiments/baselines.py``.
"""
