"""The check of notebook 01: any correct answer passes; the stub is ⏳; each typical mistake gets its own hint."""

import numpy as np
import pytest
import torch

from helpers.checks import Status, check_project_qkv
from helpers.checks import nb01_qkv as qkv_check

# Correct answers, written in different ways.


def with_matmul_operator(X, W_q, W_k, W_v):
    return X @ W_q, X @ W_k, X @ W_v


def with_torch_matmul(X, W_q, W_k, W_v):
    return torch.matmul(X, W_q), torch.matmul(X, W_k), torch.matmul(X, W_v)


def with_einsum(X, W_q, W_k, W_v):
    return tuple(torch.einsum("...nd,dk->...nk", X, W) for W in (W_q, W_k, W_v))


def with_a_loop_over_tokens(X, W_q, W_k, W_v):
    rows = X.reshape(-1, X.shape[-1])  # every token of every sentence, one per row

    def project(W):
        return torch.stack([x @ W for x in rows]).reshape(*X.shape[:-1], W.shape[-1])

    return project(W_q), project(W_k), project(W_v)


def in_float64(X, W_q, W_k, W_v):
    X = X.double()
    return X @ W_q.double(), X @ W_k.double(), X @ W_v.double()


def with_nn_linear(X, W_q, W_k, W_v):
    outputs = []
    for W in (W_q, W_k, W_v):
        layer = torch.nn.Linear(W.shape[0], W.shape[1], bias=False, dtype=W.dtype)
        with torch.no_grad():
            layer.weight.copy_(W.T)  # nn.Linear stores Wᵀ
        outputs.append(layer(X))
    return tuple(outputs)


def as_a_list(X, W_q, W_k, W_v):
    return [X @ W_q, X @ W_k, X @ W_v]


@pytest.mark.parametrize(
    "candidate",
    [with_matmul_operator, with_torch_matmul, with_einsum, with_a_loop_over_tokens, in_float64, with_nn_linear,
     as_a_list],
)
def test_correct_answers_pass(candidate):
    result = check_project_qkv(candidate)
    assert result.passed, result.message


def test_the_reference_passes():
    from helpers.attention import project_qkv

    assert check_project_qkv(project_qkv).passed


def test_stub_is_not_attempted():
    def project_qkv(X, W_q, W_k, W_v):
        # YOUR CODE HERE
        raise NotImplementedError()

    assert check_project_qkv(project_qkv).status is Status.NOT_ATTEMPTED


# Typical mistakes, each with the words its hint must contain.


def transposed_weights(X, W_q, W_k, W_v):
    return X @ W_q.T, X @ W_k.T, X @ W_v.T


def with_functional_linear(X, W_q, W_k, W_v):  # F.linear(X, W) is X @ W.T
    return tuple(torch.nn.functional.linear(X, W) for W in (W_q, W_k, W_v))


def one_weight_transposed(X, W_q, W_k, W_v):
    return X @ W_q, X @ W_k.T, X @ W_v


def wrong_order_qvk(X, W_q, W_k, W_v):
    return X @ W_q, X @ W_v, X @ W_k


def wrong_order_kqv(X, W_q, W_k, W_v):
    return X @ W_k, X @ W_q, X @ W_v


def w_q_for_k(X, W_q, W_k, W_v):
    return X @ W_q, X @ W_q, X @ W_v


def w_k_for_v(X, W_q, W_k, W_v):
    return X @ W_q, X @ W_k, X @ W_k


def only_q(X, W_q, W_k, W_v):
    return X @ W_q


def only_q_and_k(X, W_q, W_k, W_v):
    return X @ W_q, X @ W_k


def four_things(X, W_q, W_k, W_v):
    return X, X @ W_q, X @ W_k, X @ W_v


def weight_on_the_left(X, W_q, W_k, W_v):
    return W_q @ X, W_k @ X, W_v @ X


def numpy_arrays(X, W_q, W_k, W_v):
    x = X.numpy()
    return x @ W_q.numpy(), x @ W_k.numpy(), x @ W_v.numpy()


def transposes_x_with_dot_t(X, W_q, W_k, W_v):  # the column-vector convention: right for one sentence only
    return (W_q.T @ X.T).T, (W_k.T @ X.T).T, (W_v.T @ X.T).T


def transposes_dims_0_and_1(X, W_q, W_k, W_v):
    Xt = X.transpose(0, 1)
    return tuple((W.transpose(0, 1) @ Xt).transpose(0, 1) for W in (W_q, W_k, W_v))


def einsum_for_exactly_three_dims(X, W_q, W_k, W_v):
    return tuple(torch.einsum("bnd,dk->bnk", X, W) for W in (W_q, W_k, W_v))


def loop_over_rows_of_a_2d_x(X, W_q, W_k, W_v):
    return tuple(torch.stack([X[i] @ W for i in range(X.shape[0])]).reshape(X.shape[0], -1) for W in (W_q, W_k, W_v))


def ignores_the_weights(X, W_q, W_k, W_v):  # uses "global" weights instead of its arguments
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(X.shape[-1], X.shape[-1], generator=gen, dtype=X.dtype)
    return X @ W, X @ W, X @ W


@pytest.mark.parametrize(
    ("mistake", "hint_words"),
    [
        (transposed_weights, "transposed weight"),
        (with_functional_linear, "transposed weight"),
        (one_weight_transposed, "your K was made with W_k transposed"),
        (wrong_order_qvk, "order (Q, V, K)"),
        (wrong_order_kqv, "order (K, Q, V)"),
        (w_q_for_k, "your K was made with W_q"),
        (w_k_for_v, "your V was made with W_k"),
        (only_q, "return all three"),
        (only_q_and_k, "exactly three"),
        (four_things, "exactly three"),
        (weight_on_the_left, "your Q equals W_q @ X"),
        (numpy_arrays, "not NumPy arrays"),
        (transposes_x_with_dot_t, "leading batch dimensions"),
        (transposes_dims_0_and_1, "leading batch dimensions"),
        (einsum_for_exactly_three_dims, "leading batch dimensions"),
        (loop_over_rows_of_a_2d_x, "leading batch dimensions"),
        (ignores_the_weights, "whatever weights"),
    ],
)
def test_typical_mistakes_get_their_own_hint(mistake, hint_words):
    result = check_project_qkv(mistake)
    assert result.status is Status.FAILED
    assert hint_words in result.hint, result.message


def test_transposed_weights_are_named_whether_they_crash_or_not(monkeypatch):
    """Square weights: X @ W.T runs and gives other values. Non-square: it crashes. Same hint."""
    square = [c for c in qkv_check.CASES if c.x_shape[-1] == c.d_k == c.d_v]
    non_square = [c for c in qkv_check.CASES if c.x_shape[-1] != c.d_k]
    assert square and non_square
    for cases, words in ((square, "differs from the answer"), (non_square, "raised RuntimeError")):
        monkeypatch.setattr(qkv_check, "CASES", cases)
        result = check_project_qkv(transposed_weights)
        assert result.status is Status.FAILED
        assert words in result.summary, result.message
        assert "transposed weight" in result.hint, result.message


def test_batch_mistakes_are_named_on_a_batch_first():
    result = check_project_qkv(transposes_x_with_dot_t)
    first = qkv_check.CASES[0].x_shape
    assert str(first) in result.summary and f"works for X of shape {first[1:]}" in result.hint, result.message


def test_sizes_are_drawn_and_every_layout_is_there():
    """Cases come from seeded generators: all sizes of a case differ, and the statement's layouts all appear."""
    for shapes in qkv_check.CASES[1:]:
        sizes = [*shapes.x_shape[-2:], shapes.d_k, shapes.d_v]
        assert len(set(sizes)) == len(sizes), shapes
    ndims = {len(shapes.x_shape) for shapes in qkv_check.CASES}
    assert ndims == {2, 3, 4} and any(s.x_shape[0] == 1 for s in qkv_check.CASES)
    assert any(s.dtype == torch.float64 for s in qkv_check.CASES)


def test_an_earlier_stub_is_named():
    """A project_qkv that calls the learner's warm-up, still the stub, is told to finish that exercise."""
    def batched_dot(a, b):
        # YOUR CODE HERE
        raise NotImplementedError()

    def project_qkv(X, W_q, W_k, W_v):
        def project(W):
            return batched_dot(X[..., :, None, :], W.mT)  # every token against every column of W
        return project(W_q), project(W_k), project(W_v)

    result = check_project_qkv(project_qkv)
    assert result.status is Status.FAILED
    assert "calls your `batched_dot`, which is still the stub" in result.summary, result.message
    assert "finish the `batched_dot` exercise" in result.hint, result.message


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        (lambda X, W_q, W_k, W_v: (_ for _ in ()).throw(ValueError("boom")), "raised ValueError: boom"),
        (lambda X, W_q, W_k, W_v: None, "returned NoneType"),
        (lambda X, W_q, W_k, W_v: ([1.0], [2.0], [3.0]), "Q is of type list"),
        (lambda X, W_q, W_k, W_v: (X @ W_q, X @ W_k, torch.full_like(X @ W_v, float("nan"))), "V contains NaN"),
        (lambda X, W_q, W_k, W_v: np.zeros(3), "NumPy array"),
        ("not a function", "Expected a function"),
    ],
)
def test_broken_candidates_fail_cleanly(candidate, words):
    result = check_project_qkv(candidate)
    assert result.status is Status.FAILED
    assert words in result.message, result.message


def test_changing_the_input_in_place_is_reported():
    def scales_x_in_place(X, W_q, W_k, W_v):
        X *= 1.0
        X += 0.0
        X[..., 0] = 0.0
        return X @ W_q, X @ W_k, X @ W_v

    result = check_project_qkv(scales_x_in_place)
    assert result.status is Status.FAILED
    assert "in place" in result.message, result.message


def test_the_check_leaves_the_global_random_state_alone():
    torch.manual_seed(1)
    before = torch.rand(3)
    torch.manual_seed(1)
    check_project_qkv(transposed_weights)
    check_project_qkv(with_matmul_operator)
    assert torch.equal(torch.rand(3), before)


def test_no_hint_prints_the_answer():
    hints = [m.hint for m in qkv_check.MISTAKES] + [c.hint for c in qkv_check.check_project_qkv.spec.clues
                                                   if isinstance(c.hint, str)]
    for hint in hints:  # "your Q was made with W_k" describes the mistake; "Q = X @ W_q" would be the answer
        assert not any(f"{n} = X @ W_{n.lower()}" in hint for n in "QKV"), hint
