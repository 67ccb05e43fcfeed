import re

import pytest
import torch

from helpers.tensors import batched_dot, require_activations, require_int


@pytest.mark.parametrize("shape", [(4,), (3, 5), (2, 3, 6), (2, 2, 3, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_dot_equals_torch(shape, dtype):
    torch.manual_seed(0)
    a = torch.randn(shape, dtype=dtype)
    b = torch.randn(shape, dtype=dtype)
    expected = torch.linalg.vecdot(a, b)
    out = batched_dot(a, b)
    assert out.shape == shape[:-1]
    torch.testing.assert_close(out, expected)


def test_batched_dot_broadcasts_batch_dims():
    torch.manual_seed(0)
    a = torch.randn(2, 1, 4)
    b = torch.randn(3, 4)
    torch.testing.assert_close(batched_dot(a, b), torch.linalg.vecdot(a, b))


def test_wrong_last_dim_names_both_shapes():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"a has shape \(2, 3\), b has shape \(2, 4\)"):
        batched_dot(torch.randn(2, 3), torch.randn(2, 4))


def test_unbroadcastable_batch_dims_name_both_shapes():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\) cannot be broadcast"):
        batched_dot(torch.randn(2, 4), torch.randn(3, 4))


def test_scalar_and_non_tensor_inputs_are_clear_errors():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"expected shape \(\.\.\., d\), got \(\)"):
        batched_dot(torch.tensor(1.0), torch.randn(3))
    with pytest.raises(TypeError, match="a must be a torch.Tensor, got list"):
        batched_dot([1.0, 2.0], torch.randn(2))


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, "4", None])
def test_require_int_refuses_what_is_not_a_positive_int(bad):
    with pytest.raises(ValueError, match=rf"^size must be a positive int, got {re.escape(repr(bad))}$"):
        require_int("size", bad)


def test_require_int_returns_its_value_and_takes_a_minimum():
    assert require_int("size", 3) == 3
    assert require_int("start", 0, minimum=0) == 0
    with pytest.raises(ValueError, match="start must be an int ≥ 0, got -1"):
        require_int("start", -1, minimum=0)


def test_require_activations_names_the_expected_and_the_actual_shape():
    x = torch.zeros(2, 5, 8)
    assert require_activations("x", x, 8) is x
    with pytest.raises(ValueError, match=r"^y: expected shape \(B, n, d_model=8\), got \(5, 8\)$"):
        require_activations("y", torch.zeros(5, 8), 8)
    with pytest.raises(ValueError, match=r"expected shape \(B, n, d_model=6\), got \(2, 5, 8\)"):
        require_activations("y", x, 6)
    with pytest.raises(TypeError, match="y must be a torch.Tensor, got list"):
        require_activations("y", [[1.0]], 8)
