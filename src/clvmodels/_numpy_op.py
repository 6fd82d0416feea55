"""A numpy log-likelihood with its exact gradient, as one pytensor Op (for PyMC/nutpie).

Some likelihoods cannot be written as a pytensor graph: the Pareto/NBD's
(:func:`clvmodels.models.paretonbd.loglik`) is a Gauss-Legendre quadrature whose panels
depend on the data and the parameters. Rather than a second derivation for pytensor,
:class:`NumpyLoglik` calls the module's own ``loglik_and_grad`` (value and exact
gradient from one quadrature) from the graph:

* the Op has ``1 + n_params`` outputs: the log-likelihood per row and its derivative
  with respect to each parameter per row;
* its ``grad`` multiplies the incoming gradient by those derivative outputs (summed over
  the rows a scalar parameter was broadcast to). It builds the same Apply node again, so
  pytensor's merge rewrite makes one node of the two: a log density and its gradient
  cost one call of ``loglik_and_grad``;
* the data inputs (everything after the parameters) are not differentiable: their
  gradient is disconnected.

The Op has no C or numba implementation: pytensor's C back-end runs its ``perform`` in
Python (numba cannot compile it), which is what :mod:`clvmodels.bayes` does for such
models. Importing this module imports pytensor: :func:`clvmodels._math.pytensor_ops`
imports it lazily.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op


class NumpyLoglik(Op):
    """``value_and_grad(*params, *data) -> (loglik, (d_param_1, ..., d_param_n))`` as an
    Op with outputs (loglik, d_param_1, ..., d_param_n), all broadcast to one shape.

    Parameters
    ----------
    value_and_grad : callable
        A pure numpy function of the ``n_params`` parameters then the data, returning the
        per-row log-likelihood and a tuple of its per-row partial derivatives (e.g.
        :func:`clvmodels.models.paretonbd.loglik_and_grad`).
    n_params : int
        How many leading inputs are parameters (differentiable); the rest are data.
    """

    __props__ = ("value_and_grad", "n_params")

    def __init__(self, value_and_grad: Callable, n_params: int):
        self.value_and_grad = value_and_grad
        self.n_params = int(n_params)

    def make_node(self, *inputs):
        if len(inputs) <= self.n_params:
            raise TypeError(f"{self}: expected {self.n_params} parameters and some data")
        inputs = [pt.cast(pt.as_tensor_variable(v), "float64") for v in inputs]
        ndim = max(v.type.ndim for v in inputs)
        outputs = [
            pt.TensorType("float64", shape=(None,) * ndim)() for _ in range(1 + self.n_params)
        ]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        value, grads = self.value_and_grad(*inputs)
        shape = np.broadcast_shapes(*(np.shape(v) for v in inputs))
        for store, out in zip(output_storage, (value, *grads), strict=True):
            out = np.asarray(out, dtype=np.float64)
            store[0] = out if out.shape == shape else np.broadcast_to(out, shape).copy()

    def connection_pattern(self, node):
        n_out = 1 + self.n_params
        return [[k < self.n_params] * n_out for k in range(len(node.inputs))]

    def grad(self, inputs, output_grads):
        g, *rest = output_grads
        outs = self(*inputs)  # the same node: merged with the one being differentiated
        result = []
        for k, v in enumerate(inputs):
            if k >= self.n_params:
                result.append(DisconnectedType()())
            elif not all(isinstance(o.type, DisconnectedType) for o in rest):
                # second derivatives (through the gradient outputs) are not provided
                result.append(grad_not_implemented(self, k, v))
            else:
                result.append(_reduce_to(g * outs[k + 1], v))
        return result


def _reduce_to(d, v):
    """``d`` summed over the axes ``v`` was broadcast along (the chain rule of broadcasting)."""
    extra = d.type.ndim - v.type.ndim
    if extra:
        d = d.sum(axis=tuple(range(extra)))
    axes = [i for i, b in enumerate(v.type.broadcastable) if b and not d.type.broadcastable[i]]
    if axes:
        d = d.sum(axis=axes, keepdims=True)
    return d


def numpy_loglik(value_and_grad: Callable, n_params: int, *inputs):
    """The log-likelihood output of :class:`NumpyLoglik` applied to ``inputs``."""
    return NumpyLoglik(value_and_grad, n_params)(*inputs)[0]


class NumpyTotal(NumpyLoglik):
    """``value_and_grad(*params, *data) -> (total, (d_param_1, ..., d_param_n))`` as an
    Op with outputs (total, d_param_1, ..., d_param_n): a log-likelihood summed over the
    data (a scalar) and its gradient, each parameter a vector (one entry per group; e.g.
    :func:`clvmodels.models.bgnbd.loglik_total_and_grad`). For a likelihood whose sum is
    cheaper arranged by what its terms depend on than row by row; its ``grad`` is
    :class:`NumpyLoglik`'s.
    """

    def make_node(self, *inputs):
        inputs = [pt.as_tensor_variable(v) for v in inputs]
        params = [pt.cast(v, "float64") for v in inputs[: self.n_params]]
        if any(p.type.ndim != 1 for p in params):
            raise TypeError(f"{self}: each parameter must be a vector (one entry per group)")
        outputs = [pt.dscalar()] + [p.type() for p in params]
        return Apply(self, params + inputs[self.n_params :], outputs)

    def perform(self, node, inputs, output_storage):
        # far from the data (the sampler's first steps) a parameter under- or overflows:
        # the total is then -inf or NaN, which the sampler rejects, as pytensor's own ops
        with np.errstate(divide="ignore", over="ignore", invalid="ignore", under="ignore"):
            total, grads = self.value_and_grad(*inputs)
        output_storage[0][0] = np.asarray(total, dtype=np.float64)
        for store, g in zip(output_storage[1:], grads, strict=True):
            store[0] = np.asarray(g, dtype=np.float64)
