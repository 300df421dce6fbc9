"""EfficientZero (Ye et al. 2021): the model-based agent, its functional core.

- ``config``: the frozen config records of a run (``Config``);
- ``networks``, ``transforms``, ``augment``: representation, dynamics with the value-prefix
  LSTM, prediction, the categorical supports, image augmentation;
- ``search``: the mctx adapter; ``actor``: batched action selection;
- ``replay``, ``targets``, ``learner``, ``dreaming``: device-resident replay and target cache,
  value / value-prefix / policy targets, the update, imagined rollouts;
- ``compute``: model evaluations spent; ``reward_scale``: rewards beyond the supports;
- ``builder``: every part of a run made from a config and an env's spaces (both loops use it).
"""
