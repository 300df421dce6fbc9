import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# Compiled programs are shared between tests (and with the CLI runs of the e2e tests) through
# the persistent compilation cache; keyed by XLA on the program, it never serves a stale one.
from dreamer.compilation import enable_compilation_cache  # noqa: E402

enable_compilation_cache()
