"""Check of notebook 05's class exercise `MultiHeadAttention`: correct modules pass, each mistake is named.

The check copies torch's nn.MultiheadAttention weights into the learner's module; the reference
it compares with is helpers' MultiHeadAttention, which is proven equal to torch's module here.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from helpers import attention
from helpers.checks import Status
from helpers.checks.nb05_multi_head import MODULE_MISTAKES, check_MultiHeadAttention


class Projections(nn.Module):
    """The four projections every variant shares (the names the check copies weights into)."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(d_model, d_model) for _ in range(4))
        self.dropout = nn.Dropout(dropout)


def head_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    return mask.unsqueeze(1) if mask is not None and mask.ndim == 3 else mask


class LoopOverHeads(Projections):
    """One head at a time, with explicit slices of the fused projections; dropout once on the stacked weights."""

    def forward(self, query, key, value, mask=None):
        d_k = query.shape[-1] // self.num_heads
        q, k, v = self.W_q(query), self.W_k(key), self.W_v(value)
        mask = head_mask(mask)
        all_weights = []
        for j in range(self.num_heads):
            cols = slice(j * d_k, (j + 1) * d_k)
            scores = q[..., cols] @ k[..., cols].transpose(-2, -1) / math.sqrt(d_k)
            if mask is not None:
                scores = scores.masked_fill(~(mask[:, 0] if mask.ndim == 4 else mask), float("-inf"))
            all_weights.append(torch.softmax(scores, dim=-1))
        weights = torch.stack(all_weights, dim=1)
        dropped = self.dropout(weights)
        heads = [dropped[:, j] @ v[..., j * d_k:(j + 1) * d_k] for j in range(self.num_heads)]
        return self.W_o(torch.cat(heads, dim=-1)), weights


class Einsum(Projections):
    def forward(self, query, key, value, mask=None):
        B, n_q, d = query.shape
        h, d_k = self.num_heads, d // self.num_heads
        q = self.W_q(query).view(B, n_q, h, d_k)
        k = self.W_k(key).view(B, -1, h, d_k)
        v = self.W_v(value).view(B, -1, h, d_k)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / d_k**0.5
        if mask is not None:
            scores = torch.where(head_mask(mask), scores, -torch.inf)
        weights = scores.softmax(dim=-1)
        out = torch.einsum("bhqk,bkhd->bqhd", self.dropout(weights), v).reshape(B, n_q, d)
        return self.W_o(out), weights


class Float64Inside(Projections):
    """Computes the attention in float64 and returns float64 (a more precise answer is a right answer)."""

    def forward(self, query, key, value, mask=None):
        q, k, v = (attention.split_heads(lin(x).double(), self.num_heads)
                   for lin, x in ((self.W_q, query), (self.W_k, key), (self.W_v, value)))
        weights = attention.attention_weights(q, k, head_mask(mask))
        merged = attention.merge_heads(self.dropout(weights) @ v)
        return merged @ self.W_o.weight.double().T + self.W_o.bias.double(), weights


class Functional(Projections):
    """Through torch's fused kernel for the output (it applies no dropout itself here), weights by hand."""

    def forward(self, query, key, value, mask=None):
        q, k, v = (attention.split_heads(lin(x), self.num_heads)
                   for lin, x in ((self.W_q, query), (self.W_k, key), (self.W_v, value)))
        weights = attention.attention_weights(q, k, head_mask(mask))
        return self.W_o(attention.merge_heads(self.dropout(weights) @ v)), weights


@pytest.mark.parametrize("candidate", [attention.MultiHeadAttention, LoopOverHeads, Einsum, Float64Inside,
                                       Functional])
def test_correct_modules_pass(candidate):
    result = check_MultiHeadAttention(candidate)
    assert result.passed, result.message


def test_the_reference_equals_torch_on_the_checks_cases():
    spec = check_MultiHeadAttention.spec
    for case in spec.cases():
        kw = case.run.keywords
        torch.manual_seed(0)
        theirs = nn.MultiheadAttention(kw["d_model"], kw["heads"], batch_first=True).to(kw["dtype"]).eval()
        with torch.no_grad():
            theirs.in_proj_bias.normal_()
            theirs.out_proj.bias.normal_()
        ours = attention.MultiHeadAttention.from_torch(theirs)
        query, key, value = kw["inputs"]
        mask = kw["mask"]
        torch_mask = None
        if mask is not None:  # torch: True = may NOT attend, one (n_q, n_k) map per batch and head
            full = head_mask(mask).expand(query.shape[0], kw["heads"], query.shape[1], key.shape[1])
            torch_mask = ~full.reshape(-1, query.shape[1], key.shape[1])
        out_t, w_t = theirs(query, key, value, attn_mask=torch_mask, average_attn_weights=False)
        out_o, w_o = ours(query, key, value, mask)
        torch.testing.assert_close(out_o, out_t, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(w_o, w_t, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mistake", MODULE_MISTAKES, ids=lambda m: m.hint[:40])
def test_each_listed_mistake_gets_exactly_its_hint(mistake):
    result = check_MultiHeadAttention(mistake.wrong)
    assert result.status is Status.FAILED and result.hint == mistake.hint, result.message


class NoScaling(Projections):
    def forward(self, query, key, value, mask=None):
        q, k, v = (attention.split_heads(lin(x), self.num_heads)
                   for lin, x in ((self.W_q, query), (self.W_k, key), (self.W_v, value)))
        scores = q @ k.mT
        if mask is not None:
            scores = scores.masked_fill(~head_mask(mask), float("-inf"))
        weights = scores.softmax(-1)
        return self.W_o(attention.merge_heads(self.dropout(weights) @ v)), weights


class ViewWithoutTranspose(Projections):
    def forward(self, query, key, value, mask=None):
        def split(x):
            return x.view(x.shape[0], self.num_heads, x.shape[1], -1)
        q, k, v = split(self.W_q(query)), split(self.W_k(key)), split(self.W_v(value))
        weights = attention.attention_weights(q, k, head_mask(mask))
        return self.W_o(attention.merge_heads(self.dropout(weights) @ v)), weights


class FillWhereTrue(Projections):
    def forward(self, query, key, value, mask=None):
        q, k, v = (attention.split_heads(lin(x), self.num_heads)
                   for lin, x in ((self.W_q, query), (self.W_k, key), (self.W_v, value)))
        scores = q @ k.mT / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(head_mask(mask), float("-inf"))
        weights = scores.softmax(-1)
        return self.W_o(attention.merge_heads(self.dropout(weights) @ v)), weights


class ForgotWo(Projections):
    def forward(self, query, key, value, mask=None):
        q, k, v = (attention.split_heads(lin(x), self.num_heads)
                   for lin, x in ((self.W_q, query), (self.W_k, key), (self.W_v, value)))
        weights = attention.attention_weights(q, k, head_mask(mask))
        return attention.merge_heads(self.dropout(weights) @ v), weights


@pytest.mark.parametrize(("candidate", "words"), [
    (NoScaling, "not scaled"),
    (ViewWithoutTranspose, "reshaped straight to (B, h, n, d_k)"),
    (FillWhereTrue, "mask is inverted"),
    (ForgotWo, "W_o is never applied"),
])
def test_mistakes_written_independently_are_named(candidate, words):
    result = check_MultiHeadAttention(candidate)
    assert result.status is Status.FAILED and words in result.hint, result.message


class NoBias(Projections):
    def __init__(self, d_model, num_heads, dropout=0.0):
        super().__init__(d_model, num_heads, dropout)
        self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(d_model, d_model, bias=False) for _ in range(4))

    forward = Functional.forward


class WrongNames(Projections):
    def __init__(self, d_model, num_heads, dropout=0.0):
        super().__init__(d_model, num_heads, dropout)
        self.out_proj = self.W_o
        del self.W_o

    def forward(self, query, key, value, mask=None):
        raise AssertionError("never reached: the weights do not fit")


class Fused(Projections):
    def __init__(self, d_model, num_heads, dropout=0.0):
        super().__init__(d_model, num_heads, dropout)
        self.W_q = nn.Linear(d_model, 2 * d_model)

    forward = Functional.forward


def test_a_module_without_biases_is_told_so():
    result = check_MultiHeadAttention(NoBias)
    assert result.status is Status.FAILED and "lacks W_q.bias, W_k.bias, W_v.bias, W_o.bias" in result.summary
    assert "no bias" in result.hint


def test_wrong_attribute_names_name_the_missing_and_unexpected_keys():
    result = check_MultiHeadAttention(WrongNames)
    assert result.status is Status.FAILED
    assert "lacks W_o.weight, W_o.bias" in result.summary and "out_proj.weight, out_proj.bias" in result.summary
    assert "W_q, W_k, W_v and W_o" in result.hint


def test_a_wrong_shape_is_named():
    result = check_MultiHeadAttention(Fused)
    d_model = next(iter(check_MultiHeadAttention.spec.cases())).run.keywords["d_model"]
    assert result.status is Status.FAILED, result.message
    assert f"W_q.weight has shape ({2 * d_model}, {d_model})" in result.summary, result.message


def test_stub_broken_and_odd_candidates():
    class Stub(nn.Module):
        def __init__(self, d_model, num_heads, dropout=0.0):
            super().__init__()
            raise NotImplementedError()

    class OnlyOutput(Functional):
        def forward(self, query, key, value, mask=None):
            return super().forward(query, key, value, mask)[0]

    assert check_MultiHeadAttention(Stub).status is Status.NOT_ATTEMPTED
    not_a_module = check_MultiHeadAttention(lambda d_model, num_heads, dropout=0.0: "nonsense")
    assert not_a_module.status is Status.FAILED and "nn.Module" in not_a_module.hint
    only_output = check_MultiHeadAttention(OnlyOutput)
    assert only_output.status is Status.FAILED and "return both" in only_output.hint, only_output.message
    assert check_MultiHeadAttention(lambda *a, **k: 1 / 0).status is Status.FAILED


# ---- issue 20: dropout with 0 < p < 1, torch's weights after dropout, an earlier stub named ---------------------

class DropoutPerHead(Projections):
    """Right: dropout on each head's weights separately (other random draws than the reference's one call)."""

    def forward(self, query, key, value, mask=None):
        q, k, v = (attention.split_heads(lin(x), self.num_heads)
                   for lin, x in ((self.W_q, query), (self.W_k, key), (self.W_v, value)))
        weights = attention.attention_weights(q, k, head_mask(mask))
        heads = torch.stack([self.dropout(weights[:, j]) @ v[:, j] for j in range(self.num_heads)], dim=1)
        return self.W_o(attention.merge_heads(heads)), weights


class FunctionalDropout(Projections):
    def forward(self, query, key, value, mask=None):
        q, k, v = (attention.split_heads(lin(x), self.num_heads)
                   for lin, x in ((self.W_q, query), (self.W_k, key), (self.W_v, value)))
        weights = attention.attention_weights(q, k, head_mask(mask))
        dropped = nn.functional.dropout(weights, self.dropout.p, training=self.training)
        return self.W_o(attention.merge_heads(dropped @ v)), weights


@pytest.mark.parametrize("candidate", [DropoutPerHead, FunctionalDropout])
def test_correct_dropouts_pass_whatever_their_random_draws(candidate):
    result = check_MultiHeadAttention(candidate)
    assert result.passed, result.message


def test_the_train_case_has_a_dropout_strictly_between_0_and_1():
    ps = [c.run.keywords["dropout"] for c in check_MultiHeadAttention.spec.cases() if c.run.keywords["train"]]
    assert ps and all(0 < p < 1 for p in ps)


def test_keyed_dropout_restores_torchs_dropout():
    from helpers.checks.nb05_multi_head import keyed_dropout

    original = nn.functional.dropout
    with keyed_dropout():
        x = torch.rand(4, 50)
        assert torch.equal(nn.Dropout(0.3)(x), nn.Dropout(0.3)(x))  # the same entries dropped, call after call
    assert nn.functional.dropout is original


def test_torch_returns_the_weights_after_dropout_the_reference_before():
    """What notebook 05 says: in train(), nn.MultiheadAttention's returned weights went through dropout."""
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(8, 2, dropout=0.5, batch_first=True).train()
    ours = attention.MultiHeadAttention.from_torch(theirs)
    x = torch.randn(2, 6, 8)
    _, w_theirs = theirs(x, x, x, average_attn_weights=False)
    _, w_ours = ours(x, x, x)
    torch.testing.assert_close(w_ours.sum(-1), torch.ones(2, 2, 6))
    assert (w_theirs == 0).any() and not torch.allclose(w_theirs.sum(-1), torch.ones(2, 2, 6))


def split_heads(x, num_heads):  # the learner's earlier exercise, still the stub
    raise NotImplementedError()


class CallsTheStub(Projections):
    def forward(self, query, key, value, mask=None):
        q = split_heads(self.W_q(query), self.num_heads)
        return q, q


def test_a_stub_split_heads_is_named():
    result = check_MultiHeadAttention(CallsTheStub)
    assert result.status is Status.FAILED and "calls your `split_heads`" in result.summary, result.message


class HandMadeDropout(Projections):
    """Right in spirit, but its random mask bypasses nn.Dropout: the check cannot repeat it, and says so."""

    def forward(self, query, key, value, mask=None):
        q, k, v = (attention.split_heads(lin(x), self.num_heads)
                   for lin, x in ((self.W_q, query), (self.W_k, key), (self.W_v, value)))
        weights = attention.attention_weights(q, k, head_mask(mask))
        p = self.dropout.p
        dropped = weights * (torch.rand_like(weights) >= p) / (1 - p) if self.training else weights
        return self.W_o(attention.merge_heads(dropped @ v)), weights


def test_a_hand_made_dropout_is_told_to_use_the_layer():
    result = check_MultiHeadAttention(HandMadeDropout)
    assert result.status is Status.FAILED and "nn.Dropout" in result.hint, result.message
