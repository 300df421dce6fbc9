"""The persistent XLA compilation cache (shell code): a second run of the same preset on the
same machine loads its compiled functions instead of compiling them again.

The cache lives in ``$DREAMER_CACHE_DIR`` (default ``~/.cache/dreamer/jax``);
``DREAMER_COMPILATION_CACHE=0`` turns it off. Entries are keyed by XLA on the program, the
device and the versions, so a stale entry is never used.
"""

from __future__ import annotations

import os
from pathlib import Path


def enable_compilation_cache() -> Path | None:
    """Point JAX at the persistent cache; returns its folder (None when turned off)."""
    if os.environ.get("DREAMER_COMPILATION_CACHE", "1") == "0":
        return None
    import jax

    default = Path.home() / ".cache" / "dreamer" / "jax"
    path = Path(os.environ.get("DREAMER_CACHE_DIR", default)).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # an unwritable home: run without the cache
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
