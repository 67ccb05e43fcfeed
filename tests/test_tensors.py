import pytest
import torch

from helpers.tensors import batched_dot


@pytest.mark.parametrize("shape", [(4,), (3, 5), (2, 3, 6), (2, 2, 3, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_dot_equals_torch(shape, dtype):
    a = torch.randn(shape, dtype=dtype)
    b = torch.randn(shape, dtype=dtype)
    expected = torch.linalg.vecdot(a, b)
    out = batched_dot(a, b)
    assert out.shape == shape[:-1]
    torch.testing.assert_close(out, expected)


def test_batched_dot_broadcasts_batch_dims():
    a = torch.randn(2, 1, 4)
    b = torch.randn(3, 4)
    torch.testing.assert_close(batched_dot(a, b), torch.linalg.vecdot(a, b))


def test_wrong_last_dim_names_both_shapes():
    with pytest.raises(ValueError, match=r"a has shape \(2, 3\), b has shape \(2, 4\)"):
        batched_dot(torch.randn(2, 3), torch.randn(2, 4))


def test_unbroadcastable_batch_dims_name_both_shapes():
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\) cannot be broadcast"):
        batched_dot(torch.randn(2, 4), torch.randn(3, 4))


def test_scalar_and_non_tensor_inputs_are_clear_errors():
    with pytest.raises(ValueError, match=r"expected shape \(\.\.\., d\), got \(\)"):
        batched_dot(torch.tensor(1.0), torch.randn(3))
    with pytest.raises(TypeError, match="a must be a torch.Tensor, got list"):
        batched_dot([1.0, 2.0], torch.randn(2))
