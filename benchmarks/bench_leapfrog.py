"""Where a leapfrog step of the fast path's NUTS goes: the gradient alone against NUTS.

BG/NBD on the CDNOW sample (1,024 padded distinct rows), the fast path's own log density
(:func:`clvmodels.bayes._fast.log_density`), a step size and dense mass matrix from one
window adaptation (seed 0). In one process, CPU time (``time.process_time``, less
sensitive to a loaded machine than wall time), best of 3:

* ``grad``: ``value_and_grad`` of the density in a ``lax.while_loop``, at a point that
  moves every iteration (as in a trajectory);
* ``nuts``: blackjax's NUTS, 1,000 transitions in a ``lax.scan``, divided by the number
  of leapfrog steps taken;
* ``nuts_overhead``: the same NUTS on a 4-dimensional Gaussian with the same mass matrix
  (the sampler's own cost per leapfrog step).

Run with another JAX to compare versions on the same program, e.g. a venv holding
``jax==0.4.31 jaxlib==0.4.31 blackjax`` put first on the path:
``PYTHONPATH=<its site-packages> .venv/bin/python benchmarks/bench_leapfrog.py``
(JAX before 0.4.36 has no public ``lax.optimization_barrier``; a shim is installed).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np


def _shim_barrier(jax) -> None:
    """``lax.optimization_barrier`` for old JAX (private, without a JVP rule there)."""
    if hasattr(jax.lax, "optimization_barrier"):
        return
    from jax._src.ad_checkpoint import _optimization_barrier

    @jax.custom_jvp
    def barrier(x):
        return _optimization_barrier(x)

    barrier.defjvp(lambda primals, tangents: (barrier(primals[0]), tangents[0]))
    jax.lax.optimization_barrier = barrier


def _cpu_per(fn, count_of, repeat=3) -> float:
    """Best CPU microseconds per unit of ``fn()`` (``count_of(result)`` units)."""
    best = np.inf
    for _ in range(repeat):
        start = time.process_time()
        out = fn()
        best = min(best, (time.process_time() - start) / count_of(out) * 1e6)
    return best


def main() -> None:
    import jax

    _shim_barrier(jax)
    import blackjax
    import jax.numpy as jnp

    from clvmodels import bayes, datasets
    from clvmodels.bayes import _fast
    from clvmodels.rfm import rfm_summary

    tx = datasets.cdnow_transactions(sample=True)
    rfm = rfm_summary(tx, customer="customer_id", date="date", amount="amount",
                      observation_end="1997-09-30", unit="W")
    model = bayes.BGNBD()
    codes, _, cols, _, w = model._fit_data(rfm)
    specs = model._prior_specs(cols, w)
    plan = _fast.plan(model, specs, cols, w, codes, 1, {})
    data = _fast.device_data(plan)

    def density(d):
        return lambda z: _fast.log_density(model, plan, z, d)

    z0 = _fast.initial_points(model, plan, specs, 1, np.random.default_rng(0))[0]
    adapt = blackjax.window_adaptation(blackjax.nuts, density(data), is_mass_matrix_diagonal=False)
    (state, params), _ = jax.jit(lambda k: adapt.run(k, z0, num_steps=1000))(
        jax.random.PRNGKey(0))
    step, imm = params["step_size"], params["inverse_mass_matrix"]
    kernel = blackjax.nuts.build_kernel()

    def nuts_of(logd):
        @jax.jit
        def run(key, s):
            def one(s, k):
                s, info = kernel(k, s, logd, step, imm, 10)
                return s, info.num_integration_steps
            return jax.lax.scan(one, s, jax.random.split(key, 1000))
        return run

    @jax.jit
    def grads(z, n):
        vg = jax.value_and_grad(density(data))

        def body(s):
            i, acc = s
            value, _ = vg(z + 1e-3 * jnp.sin(1.0 * i))
            return i + 1, acc + value
        return jax.lax.while_loop(lambda s: s[0] < n, body, (0, 0.0))[1]

    centre, precision = state.position, jnp.linalg.inv(imm)

    def gaussian(q):
        return -0.5 * (q - centre) @ precision @ (q - centre)

    out = {"jax": jax.__version__, "blackjax": blackjax.__version__,
           "xla_flags": os.environ.get("XLA_FLAGS", ""), "rows": int(data["weight"].size)}
    n = 3000
    jax.block_until_ready(grads(state.position, 10))
    out["grad_cpu_us"] = _cpu_per(
        lambda: jax.block_until_ready(grads(state.position, n)), lambda _: n)
    for name, logd in (("nuts", density(data)), ("nuts_overhead", gaussian)):
        run = nuts_of(logd)
        s0 = blackjax.nuts.init(state.position, logd)
        jax.block_until_ready(run(jax.random.PRNGKey(1), s0))
        out[f"{name}_cpu_us_per_leapfrog"] = _cpu_per(
            lambda run=run, s0=s0: jax.block_until_ready(run(jax.random.PRNGKey(2), s0)),
            lambda res: int(res[1].sum()))
    out = {k: round(v, 1) if isinstance(v, float) else v for k, v in out.items()}
    out["load_1min"] = round(os.getloadavg()[0], 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
