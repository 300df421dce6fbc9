"""The agents, one folder each: the functional core of every algorithm.

An agent folder holds its config, networks, learning (pure, jitted functions of explicit
state) and a builder that makes its parts from a config. Agents import ``dreamer.core`` and
their own modules only: never another agent, the run shell (``dreamer.shell``) or the loops
(``dreamer.loops``), which import them.

- ``efficientzero``: the model-based agent (search over a learned model, reanalysis, dreaming);
- ``baselines``: the model-free DQN family and PPO.
"""
