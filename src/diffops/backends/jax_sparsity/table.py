"""The rule of every primitive that has a precise one, and the deliberate exceptions.

Anything not in :data:`RULES` takes the conservative rule (every output element
depends on everything its operands depend on); :data:`CONSERVATIVE` lists the
primitives known to take it on purpose, so that a test can check that every
``jax.lax`` primitive is classified.
"""

from __future__ import annotations

from diffops.backends.jax_sparsity import control, rules
from diffops.backends.jax_sparsity.emulate import MOVERS
from diffops.backends.jax_sparsity.propagate import Rule
from diffops.backends.jax_sparsity.rules import names

IDENTITIES = names(
    "name device_put sharding_constraint reshard layout_constraint pvary "
    "optimization_barrier"
)

ELEMENTWISE = names(
    """abs acos acosh add add_any and asin asinh atan atan2 atanh bessel_i0e
    bessel_i1e cbrt ceil clamp complex conj convert_element_type cos cosh digamma
    div eq erf erf_inv erfc exp exp2 expm1 floor ge gt igamma igamma_grad_a igammac
    imag integer_pow is_finite le lgamma log log1p logistic lt max min ne neg
    nextafter not or polygamma pow random_gamma_grad real reduce_precision
    regularized_incomplete_beta rem round rsqrt sign sin sinh sqrt square
    stop_gradient sub tan tanh xor zeta clz population_count shift_left
    shift_right_arithmetic shift_right_logical mulhi eq_to le_to lt_to"""
)
"""Output element ``i`` depends on element ``i`` of each operand (scalars broadcast)."""

REDUCTIONS = names(
    "reduce_sum reduce_max reduce_min reduce_prod reduce_and reduce_or reduce_xor "
    "argmax argmin reduce"
)
CUMULATIVE = names("cumsum cumprod cummax cummin cumlogsumexp")
CALLS = {
    "pjit": "jaxpr",
    "jit": "jaxpr",
    "closed_call": "call_jaxpr",
    "core_call": "call_jaxpr",
    "remat": "jaxpr",
    "remat2": "jaxpr",
    "checkpoint": "jaxpr",
}

RULES: dict[str, Rule] = {
    **dict.fromkeys(ELEMENTWISE, rules.elementwise),
    "mul": rules.multiply,
    **dict.fromkeys(MOVERS, rules.mover),
    **dict.fromkeys(REDUCTIONS, rules.reduction),
    **dict.fromkeys(CUMULATIVE, rules.cumulative),
    "scatter": rules.scatter("set"),
    **dict.fromkeys(
        [
            "scatter-add",
            "scatter_add",
            "scatter-sub",
            "scatter_sub",
            "scatter-mul",
            "scatter_mul",
            "scatter-min",
            "scatter_min",
            "scatter-max",
            "scatter_max",
        ],
        rules.scatter("combine"),
    ),
    **dict.fromkeys(IDENTITIES, rules.identity),
    "sort": rules.sort,
    "top_k": rules.top_k,
    "dot_general": rules.dot_general,
    "conv_general_dilated": rules.convolution,
    **{name: control.call(key) for name, key in CALLS.items()},
    "cond": control.cond,
    "scan": control.scan,
    "while": control.while_loop,
}
"""The precise rules, by primitive name; anything else is :func:`conservative`."""

CONSERVATIVE = names(
    """custom_jvp_call custom_vjp_call custom_vjp_call_jaxpr custom_lin linear_call
    linear_solve custom_linear_solve fft reduce_window reduce_window_sum
    reduce_window_max reduce_window_min select_and_gather_add select_and_scatter_add
    select_and_scatter approx_top_k bitcast_convert_type rng_bit_generator
    rng_uniform iota after_all create_token all_gather all_to_all axis_index pmax
    pmin ppermute psum ragged_all_to_all sharding_constraint device_put dce_sink
    stage shard_map xla_pmap pure_callback io_callback
    cholesky eigh lu qr svd triangular_solve tridiagonal_solve schur hessenberg
    householder_product tridiagonal"""
)
"""Primitives known to take the conservative rule on purpose (opaque derivative
rules, collectives, linear algebra, windows, effects)."""
