"""Test-wide settings; this file also marks the repository root for pytest.

Eight host CPU devices let the launch tests run pmap as on a TPU host, and
must be requested before JAX initialises its backend. Golden comparisons
need full float32 matmuls, and Haiku checks that no raw JAX transform wraps
code that creates parameters or draws RNG keys.
"""

import os

os.environ.setdefault(
    "XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import haiku as hk  # pylint: disable=g-import-not-at-top
import jax  # pylint: disable=g-import-not-at-top

jax.config.update("jax_default_matmul_precision", "highest")
hk.experimental.check_jax_usage(True)
