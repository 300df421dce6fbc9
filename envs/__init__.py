"""Making environments: gymnasium ids, the Atari-100k protocol, custom envs, vector envs.

```python
import envs
env = envs.make("ALE/Pong-v5", seed=0)                   # Atari-100k protocol, train mode
env = envs.make("ALE/Pong-v5", mode="eval", noop_max=0)  # AtariOptions fields as options
env = envs.make("CartPole-v1")                           # any gymnasium id
env = envs.make("envs.examples:make_corridor", length=5) # package.module:factory
envs.register("corridor", make_corridor)                 # a short name of our own
venv = envs.make_vector("ALE/Pong-v5", 8, seed=0)        # SAME_STEP autoreset
```

JAX-native environments (``envs.make_jax("gymnax:CartPole-v1")``, ``JaxEnv``) run the fused
loop, whole runs inside ``jit``. ``envs.grids`` makes the benchmark suites' grid worlds:
bsuite DeepSea at a chosen size (JAX-native) and MiniGrid envs through their image view.

This package depends on gymnasium, ale-py, numpy and jax (gymnax for ``gymnax:`` ids,
minigrid for ``envs.grids:make_minigrid``); it never imports ``dreamer``.
"""

from envs.atari import MODES, Atari100kEnv, AtariOptions
from envs.jax_envs import (
    JaxEnv,
    JaxEnvError,
    is_jax_env_id,
    is_jax_factory_id,
    jax_native,
    make_jax,
    try_make_jax,
)
from envs.registry import EnvFactory, EnvFactoryError, make, make_vector, register

__all__ = [
    "MODES",
    "Atari100kEnv",
    "AtariOptions",
    "EnvFactory",
    "EnvFactoryError",
    "JaxEnv",
    "JaxEnvError",
    "is_jax_env_id",
    "is_jax_factory_id",
    "jax_native",
    "make_jax",
    "try_make_jax",
    "make",
    "make_vector",
    "register",
]
