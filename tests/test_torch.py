"""PyTorch specifics: NumPy out, no graph leaks, the user's data untouched."""

from __future__ import annotations

import numpy as np
import pytest

import diffops
from _backends import SELECTED_BACKENDS, require_backend
from _cases import CASES_BY_ID, assert_outputs_match, case_derivative, points

pytestmark = pytest.mark.skipif(
    "torch" not in SELECTED_BACKENDS, reason="torch not selected"
)

TORCH_CASES = ("banana", "torus", "logistic5", "log1p_norm-2x3", "sq_sin-0d")


@pytest.fixture
def torch():
    require_backend("torch")
    import torch

    return torch


def _all_outputs(result):
    for out in result:
        if callable(out):
            yield out(np.ones(out.arg_shape))
        else:
            yield out


@pytest.mark.parametrize("case_id", TORCH_CASES)
def test_outputs_are_numpy_without_grad(torch, case_id):
    case = CASES_BY_ID[case_id]
    for op in case.ops:
        result = case_derivative("torch", case, op)(points(case)[0])
        for out in _all_outputs(result):
            assert not isinstance(out, torch.Tensor), f"{op} returned a tensor"
            assert isinstance(out, np.ndarray | np.generic)
            assert not hasattr(out, "requires_grad")
            assert not hasattr(out, "grad_fn")


def test_tensor_input_untouched(torch):
    case = CASES_BY_ID["log1p_norm-3"]
    tensor = torch.tensor([0.3, -0.5, 1.2], dtype=torch.float64)
    saved = tensor.clone()
    for op in case.ops:
        result = case_derivative("torch", case, op)(tensor)
        list(_all_outputs(result))
        assert not tensor.requires_grad
        assert tensor.grad is None
        assert torch.equal(tensor, saved)
        assert isinstance(result[-1], np.generic)


def test_tensor_sharing_numpy_memory_untouched(torch):
    case = CASES_BY_ID["banana"]
    x = np.array([0.2, -0.4])
    saved = x.copy()
    tensor = torch.from_numpy(x)  # the user's tensor shares x's memory
    for op in case.ops:
        list(_all_outputs(case_derivative("torch", case, op)(x)))
    np.testing.assert_array_equal(x, saved)
    assert not tensor.requires_grad
    assert tensor.grad is None


def test_grad_mode_of_the_caller_is_respected(torch):
    # Works under torch.no_grad() (e.g. inside an inference loop) and leaves it on.
    case = CASES_BY_ID["banana"]
    with torch.no_grad():
        result = case_derivative("torch", case, "mtp_hessian_grad_and_value")(
            points(case)[0]
        )
        list(_all_outputs(result))
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()


@pytest.mark.parametrize("other", ["jax", "autograd"])
@pytest.mark.parametrize("case_id", TORCH_CASES)
def test_agrees_with_jax_and_autograd(torch, other, case_id):
    require_backend(other)
    case = CASES_BY_ID[case_id]
    for op in case.ops:
        for index, x in enumerate(points(case)):
            assert_outputs_match(
                case_derivative("torch", case, op)(x),
                case_derivative(other, case, op)(x),
                dtype=np.dtype(np.float64),
                rtol=1e-10,
                atol=1e-10,
                closure_key=("torch", other, case.id, op, index),
                what=f"{op} of {case.id}: torch vs {other}",
            )


def test_float32_default_dtype_not_changed(torch):
    default = torch.get_default_dtype()
    case = CASES_BY_ID["banana"]
    case_derivative("torch", case, "hessian_grad_and_value")(points(case)[0])
    assert torch.get_default_dtype() == default


# ---------------------------------------------------------------------------------
# The caller's array is never changed, whatever the function does to its tensor


def _mul_detached(t):
    t.detach().mul_(2)
    return (t**2).sum()


def _set_data(t):
    t.data[0] = 7
    return (t**2).sum()


def _set_no_grad(t):
    import torch

    with torch.no_grad():
        t[0] = 9
    return (t**2).sum()


@pytest.mark.parametrize("func", [_mul_detached, _set_data, _set_no_grad])
@pytest.mark.parametrize("as_numpy", [True, False])
def test_in_place_changes_inside_f_never_reach_the_input(func, as_numpy):
    require_backend("torch")
    import torch

    x = np.array([1.0, 2.0, 3.0])
    given = x if as_numpy else torch.tensor(x)
    for op in ("grad_and_value", "hessian_grad_and_value", "vjp_and_value"):
        getattr(diffops, op)(func, backend="torch", as_numpy=as_numpy)(given)
        np.testing.assert_array_equal(np.asarray(given), [1.0, 2.0, 3.0])
