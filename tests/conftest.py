"""Test-session settings: a persistent XLA compilation cache (compilation dominates this suite).

The cache lives in ``$DIFFDYN_TEST_CACHE`` or ``~/.cache/diffdyn/jax-tests``; a cold cache only
costs the compilations themselves, a warm one skips most of them.
"""

import os
from pathlib import Path

import jax

_cache = Path(os.environ.get("DIFFDYN_TEST_CACHE", Path.home() / ".cache/diffdyn/jax-tests"))
_cache.mkdir(parents=True, exist_ok=True)
jax.config.update("jax_compilation_cache_dir", str(_cache))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
