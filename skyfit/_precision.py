"""float64 in JAX for everything skyfit computes (likelihood sums, fits, networks' inputs).

``import skyfit`` loads its API lazily, so the switch is made, on import of this module, by each part
that computes with JAX (the models, detection, g/h separation; the likelihood and the TS maps make it
themselves) rather than by the package.
"""

import jax

jax.config.update("jax_enable_x64", True)
X64 = True
