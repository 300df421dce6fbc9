"""The training loops: each builds its agent with the agent's builder and runs it through
the run shell (``dreamer.shell``).

- ``host``: EfficientZero on gymnasium envs, stepped on the host;
- ``fused`` (shell) and ``fused_scan`` (jitted chunks): EfficientZero on JAX-native envs,
  the whole run under ``jit``, seeds vmapped;
- ``efficientzero``: picks ``host`` or ``fused`` for a config's env (neither imports the other);
- ``dqn``, ``ppo``: the baselines' loops;
- ``groups``: several seeds of one config (``train --seeds``);
- ``algos``: the registry the command line picks an algorithm from.
"""
