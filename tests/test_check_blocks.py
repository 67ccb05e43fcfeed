"""Checks of notebooks 07 and 08: correct variants pass, stubs are ⏳, each typical mistake gets its own hint."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers.attention import MultiHeadAttention, causal_mask, padding_mask
from helpers.checks import Status
from helpers.checks.nb07_encoder import (
    ENCODER_LAYER_MISTAKES,
    FEED_FORWARD_MISTAKES,
    _layer_norm_variant,
    check_EncoderLayer,
    check_FeedForward,
    check_layer_norm,
    torch_layer_copy,
)
from helpers.checks.nb08_decoder import (
    DECODER_LAYER_MISTAKES,
    _decoder_variant,
    check_decoder_layer,
    check_DecoderLayer,
)
from helpers.transformer import DecoderLayer, EncoderLayer, FeedForward, LayerNorm


def stub(*args, **kwargs):
    raise NotImplementedError()


pytestmark = pytest.mark.usefixtures("one_thread")


# ---- layer_norm ----------------------------------------------------------------------------------------

def ln_two_pass(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def ln_var_mean(x, weight, bias, eps=1e-5):
    var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
    return (x - mean) * torch.rsqrt(var + eps) * weight + bias


def ln_float64_loop(x, weight, bias, eps=1e-5):
    flat = x.reshape(-1, x.shape[-1]).double()
    rows = []
    for row in flat:
        m = sum(row) / len(row)
        v = sum((r - m) ** 2 for r in row) / len(row)
        rows.append((row - m) / (v + eps) ** 0.5)
    return (torch.stack(rows).reshape(x.shape) * weight + bias)


def ln_torch(x, weight, bias, eps=1e-5):
    return torch.nn.functional.layer_norm(x, x.shape[-1:], weight, bias, eps)


@pytest.mark.parametrize("candidate", [ln_two_pass, ln_var_mean, ln_float64_loop, ln_torch])
def test_layer_norm_correct_variants_pass(candidate):
    result = check_layer_norm(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize(
    ("switches", "words"),
    [
        (dict(eps_outside=True), "inside the square root"),
        (dict(unbiased=True), "biased variance"),
        (dict(dims="all"), "not over the whole tensor"),
        (dict(affine=False), "scale and shift"),
        (dict(no_eps=True), "left out eps"),
        (dict(dims=(1,)), "not over the tokens"),
    ],
)
def test_layer_norm_mistakes_are_named(switches, words):
    def wrong(x, weight, bias, eps=1e-5):
        kw = dict(switches)
        if kw.get("dims") == "all":
            kw["dims"] = tuple(range(x.ndim))
        return _layer_norm_variant(x, weight, bias, eps, **kw)

    result = check_layer_norm(wrong)
    assert result.status is Status.FAILED and words in result.hint, result.message


def test_layer_norm_that_ignores_the_eps_argument_fails():
    result = check_layer_norm(lambda x, w, b, eps=1e-5: ln_two_pass(x, w, b, 1e-5))
    assert result.status is Status.FAILED and "ignored the eps argument" in result.hint


def test_the_std_plus_eps_formula_of_tutorials_is_named():
    result = check_layer_norm(lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdim=True))
                              / (x.std(-1, keepdim=True) + eps) * w + b)
    assert result.status is Status.FAILED and "x.std() + eps" in result.hint


# ---- decoder_layer -------------------------------------------------------------------------------------

def decoder_post_ln(layer, y, memory, tgt_mask, src_mask):
    y = layer.norm1(y + layer.self_attention(y, y, y, tgt_mask)[0])
    y = layer.norm2(y + layer.cross_attention(y, memory, memory, src_mask)[0])
    return layer.norm3(y + layer.feed_forward(y))


def decoder_with_dropouts_and_keywords(layer, y, memory, tgt_mask, src_mask):
    attended, _ = layer.self_attention(query=y, key=y, value=y, mask=tgt_mask)
    y = layer.norm1(y + layer.dropout1(attended))
    crossed, _ = layer.cross_attention(query=y, key=memory, value=memory, mask=src_mask)
    y = layer.norm2(y + layer.dropout2(crossed))
    return layer.norm3(y + layer.dropout3(layer.feed_forward(y)))


@pytest.mark.parametrize("candidate", [decoder_post_ln, decoder_with_dropouts_and_keywords])
def test_decoder_layer_correct_variants_pass(candidate):
    result = check_decoder_layer(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize(
    ("switches", "words"),
    [
        (dict(use_tgt_mask=False), "causal mask is not used"),
        (dict(cross_from="self"), "from the encoder output (memory)"),
        (dict(use_src_mask=False), "ignores the source padding: pass src_mask to it"),
        (dict(residual=False), "residual connection is missing"),
        (dict(pre_ln=True), "pre-LN order"),
        (dict(skip_ff=True), "feed-forward sub-layer is missing"),
        (dict(swap_cross=True), "queries and keys are swapped"),
    ],
)
def test_decoder_layer_mistakes_are_named(switches, words):
    result = check_decoder_layer(lambda *args: _decoder_variant(*args, **switches))
    assert result.status is Status.FAILED and words in result.hint, result.message


def test_decoder_check_leaves_the_global_random_stream_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check_decoder_layer(decoder_post_ln)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("check", [check_layer_norm, check_decoder_layer])
def test_stubs_are_not_attempted_and_broken_candidates_fail_cleanly(check):
    assert check(stub).status is Status.NOT_ATTEMPTED
    assert check(lambda *a, **k: 1 / 0).status is Status.FAILED
    assert check(lambda *a, **k: None).status is Status.FAILED


# ---- the class checks' reference is torch's own layer ---------------------------------------------------

@pytest.mark.parametrize("norm_first", [False, True])
def test_the_class_checks_reference_equals_torchs_layers(norm_first):
    """What the class checks load (helpers' copy of torch's layer, norms perturbed) computes torch's layer."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch_encoder = nn.TransformerEncoderLayer(16, 4, 24, 0.2, batch_first=True, norm_first=norm_first).eval()
        torch_decoder = nn.TransformerDecoderLayer(16, 4, 24, 0.2, batch_first=True, norm_first=norm_first).eval()
    for torch_layer in (torch_encoder, torch_decoder):
        with torch.no_grad():
            for name, p in torch_layer.named_parameters():
                if name.startswith("norm"):
                    p.add_(0.3 * torch.randn_like(p))
    encoder = EncoderLayer.from_torch(torch_encoder).eval()
    decoder = DecoderLayer.from_torch(torch_decoder).eval()
    tokens = torch.tensor([[4, 2, 7, 1, 3], [5, 6, 1, 0, 0]])
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    torch.backends.mha.set_fastpath_enabled(False)  # compare the padded positions too
    try:
        with torch.no_grad():
            torch.testing.assert_close(encoder(x, padding_mask(tokens, 0)),
                                       torch_encoder(x, src_key_padding_mask=tokens == 0))
            torch.testing.assert_close(decoder(x, memory, causal_mask(5), padding_mask(tokens, 0)),
                                       torch_decoder(x, memory, tgt_mask=~causal_mask(5),
                                                     memory_key_padding_mask=tokens == 0))
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    # The helpers' factories the checks call build the same kind of layer, in the asked dtype.
    assert torch_layer_copy(EncoderLayer, 16, 4, 24, 0.2, norm_first, 1, torch.float64).norm_first == norm_first
    copy = torch_layer_copy(DecoderLayer, 16, 4, 24, 0.2, norm_first, 1, torch.float64)
    assert isinstance(copy, DecoderLayer) and copy.norm1.weight.dtype == torch.float64


# ---- FeedForward -----------------------------------------------------------------------------------------

class FeedForwardFunctional(nn.Module):
    """Functional ReLU and dropout, the dropout before the ReLU (they commute)."""

    def __init__(self, d_model, d_ff, dropout=0.1):
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        h = nn.functional.dropout(self.linear1(x), self.dropout.p, self.training)
        return self.linear2(nn.functional.relu(h))


class FeedForwardEinsum(FeedForwardFunctional):
    """The linear maps written out with einsum, in float64."""

    def forward(self, x):
        w1, b1 = self.linear1.weight.double(), self.linear1.bias.double()
        h = self.dropout(torch.clamp(torch.einsum("...i,hi->...h", x.double(), w1) + b1, min=0))
        return torch.einsum("...h,oh->...o", h, self.linear2.weight.double()) + self.linear2.bias.double()


class FeedForwardStub(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.1):
        super().__init__()
        raise NotImplementedError()


@pytest.mark.parametrize("candidate", [FeedForward, FeedForwardFunctional, FeedForwardEinsum])
def test_feed_forward_correct_variants_pass(candidate):
    result = check_FeedForward(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize("mistake", FEED_FORWARD_MISTAKES, ids=lambda m: m.hint[:30])
def test_feed_forward_mistakes_get_exactly_their_hint(mistake):
    result = check_FeedForward(mistake.wrong)
    assert result.status is Status.FAILED and result.hint == mistake.hint, result.message


def test_feed_forward_written_without_relu_is_named():
    class NoReLU(FeedForwardFunctional):
        def forward(self, x):
            return self.linear2(self.dropout(self.linear1(x)))

    assert "no activation" in check_FeedForward(NoReLU).hint


def test_feed_forward_with_the_wrong_width_is_named():
    class FourTimesWider(FeedForwardFunctional):
        def __init__(self, d_model, d_ff, dropout=0.1):
            super().__init__(d_model, 4 * d_model, dropout)

    result = check_FeedForward(FourTimesWider)
    assert result.status is Status.FAILED and "linear1.weight has shape" in result.summary
    assert "d_ff" in result.hint and "not 4 * d_model" in result.hint


def test_feed_forward_with_other_names_says_which_weights_do_not_fit():
    class Sequential(nn.Module):
        def __init__(self, d_model, d_ff, dropout=0.1):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))

        def forward(self, x):
            return self.net(x)

    result = check_FeedForward(Sequential)
    assert result.status is Status.FAILED
    assert "lacks linear1.weight" in result.summary and "has net.0.weight" in result.summary
    assert "linear1, linear2 and dropout" in result.hint


# ---- EncoderLayer ----------------------------------------------------------------------------------------

class EncoderLayerWritten(nn.Module):
    """A learner's layer: nn.LayerNorm, functional dropout, keyword calls, the two orders as two methods."""

    def __init__(self, d_model, num_heads, d_ff, dropout=0.1, norm_first=False):
        super().__init__()
        self.norm_first = norm_first
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), LayerNorm(d_model)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x, mask=None):
        def attend(h):
            return self.dropout1(self.self_attention(query=h, key=h, value=h, mask=mask)[0])

        def feed(h):
            return nn.functional.dropout(self.feed_forward(h), self.dropout2.p, self.training)

        if self.norm_first:
            x = x + attend(self.norm1(x))
            return x + feed(self.norm2(x))
        x = self.norm1(attend(x) + x)
        return self.norm2(feed(x) + x)


class EncoderLayerStub(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1, norm_first=False):
        super().__init__()
        raise NotImplementedError()


@pytest.mark.parametrize("candidate", [EncoderLayer, EncoderLayerWritten])
def test_encoder_layer_correct_variants_pass(candidate):
    result = check_EncoderLayer(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize("mistake", ENCODER_LAYER_MISTAKES, ids=lambda m: m.hint[:30])
def test_encoder_layer_mistakes_get_exactly_their_hint(mistake):
    result = check_EncoderLayer(mistake.wrong)
    assert result.status is Status.FAILED and result.hint == mistake.hint, result.message


def test_encoder_layer_that_always_wires_post_ln_is_named():
    class AlwaysPostLN(EncoderLayerWritten):
        def forward(self, x, mask=None):
            x = self.norm1(x + self.dropout1(self.self_attention(x, x, x, mask)[0]))
            return self.norm2(x + self.dropout2(self.feed_forward(x)))

    result = check_EncoderLayer(AlwaysPostLN)
    assert "pre-LN" in result.summary and "you wired post-LN" in result.hint, result.message


def test_encoder_layer_with_a_forgotten_norm_attribute_names_the_weights():
    class OneNorm(EncoderLayerWritten):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            del self.norm2

    result = check_EncoderLayer(OneNorm)
    assert "lacks norm2.weight, norm2.bias" in result.summary and "norm1, norm2" in result.hint


# ---- DecoderLayer ----------------------------------------------------------------------------------------

class DecoderLayerWritten(nn.Module):
    """A learner's layer, written out sub-layer by sub-layer, with nn.LayerNorm."""

    def __init__(self, d_model, num_heads, d_ff, dropout=0.1, norm_first=False):
        super().__init__()
        self.norm_first = norm_first
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.cross_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(3))

    def forward(self, y, memory, tgt_mask=None, src_mask=None):
        if self.norm_first:
            h = self.norm1(y)
            y = y + self.dropout1(self.self_attention(h, h, h, tgt_mask)[0])
            h = self.norm2(y)
            y = y + self.dropout2(self.cross_attention(h, memory, memory, src_mask)[0])
            return y + self.dropout3(self.feed_forward(self.norm3(y)))
        y = self.norm1(y + self.dropout1(self.self_attention(y, y, y, tgt_mask)[0]))
        y = self.norm2(y + self.dropout2(self.cross_attention(y, memory, memory, src_mask)[0]))
        return self.norm3(y + self.dropout3(self.feed_forward(y)))


@pytest.mark.parametrize("candidate", [DecoderLayer, DecoderLayerWritten])
def test_decoder_layer_class_correct_variants_pass(candidate):
    result = check_DecoderLayer(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize("mistake", DECODER_LAYER_MISTAKES, ids=lambda m: m.hint[:30])
def test_decoder_layer_class_mistakes_get_exactly_their_hint(mistake):
    result = check_DecoderLayer(mistake.wrong)
    assert result.status is Status.FAILED and result.hint == mistake.hint, result.message


def test_decoder_layer_whose_memory_gets_no_gradient_fails():
    class DetachedMemory(DecoderLayerWritten):
        def forward(self, y, memory, tgt_mask=None, src_mask=None):
            return super().forward(y, memory.detach(), tgt_mask, src_mask)

    result = check_DecoderLayer(DetachedMemory)
    assert result.status is Status.FAILED and "the gradient of memory in eval()" in result.summary


def test_decoder_layer_returning_the_attention_tuple_is_told_to_keep_the_output():
    class ReturnsTuple(DecoderLayerWritten):
        def forward(self, y, memory, tgt_mask=None, src_mask=None):
            return super().forward(y, memory, tgt_mask, src_mask), None

    result = check_DecoderLayer(ReturnsTuple)
    assert result.status is Status.FAILED and "tuple" in result.summary


# ---- all class checks ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("check", "stub"), [(check_FeedForward, FeedForwardStub),
                                             (check_EncoderLayer, EncoderLayerStub),
                                             (check_DecoderLayer, EncoderLayerStub)])
def test_class_checks_stub_is_not_attempted_and_broken_classes_fail_cleanly(check, stub):
    assert check(stub).status is Status.NOT_ATTEMPTED
    assert check(lambda *a, **k: 1 / 0).status is Status.FAILED
    not_a_module = check(lambda *a, **k: torch.zeros(3))
    assert not_a_module.status is Status.FAILED and "not an nn.Module" in not_a_module.summary
    assert check(nn.Identity).status is Status.FAILED  # builds, but holds none of the weights
    assert check(FeedForward(4, 8)).status is Status.FAILED  # an instance, not the class


def test_class_checks_leave_the_global_random_stream_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check_EncoderLayer(EncoderLayer)
    check_DecoderLayer(ENCODER_LAYER_MISTAKES[0].wrong)
    assert torch.equal(torch.rand(3), expected)


def test_a_layer_that_runs_without_gradients_is_told_so():
    class NoGrad(EncoderLayerWritten):
        def forward(self, x, mask=None):
            with torch.no_grad():
                return super().forward(x, mask)

    result = check_EncoderLayer(NoGrad)
    assert result.status is Status.FAILED and "carries no gradient" in result.summary
    assert "torch.no_grad()" in result.hint


# ---- issue 20: contracts, generated cases, an earlier exercise still the stub -----------------------------

@pytest.mark.parametrize("check", [check_layer_norm, check_FeedForward, check_EncoderLayer, check_decoder_layer,
                                   check_DecoderLayer])
def test_generated_cases_are_the_same_on_every_run(check):
    first, second = list(check.spec.cases()), list(check.spec.cases())
    assert [c.name for c in first] == [c.name for c in second]
    assert len(first) >= 3


def test_layer_norm_with_another_default_eps_is_told_the_default():
    result = check_layer_norm(lambda x, w, b, eps=1e-8: ln_two_pass(x, w, b, eps))
    assert result.status is Status.FAILED and "1e-5" in result.hint and "the default eps" in result.summary


def test_layer_norm_that_drops_the_leading_dimensions_is_told_to_keep_the_shape():
    def flattened(x, weight, bias, eps=1e-5):
        return ln_two_pass(x.reshape(-1, x.shape[-1]), weight, bias, eps)

    result = check_layer_norm(flattened)
    assert result.status is Status.FAILED and "keep the input's shape" in result.hint, result.message


def test_feed_forward_with_a_dropout_written_in_is_named():
    class FixedDropout(FeedForwardFunctional):
        def __init__(self, d_model, d_ff, dropout=0.1):
            super().__init__(d_model, d_ff, 0.1)

    result = check_FeedForward(FixedDropout)
    assert result.status is Status.FAILED and "constructor's dropout argument" in result.hint, result.message


class EncoderLayerFromLengths(EncoderLayerWritten):
    """A learner who turns the mask into lengths, as if padding were always at the end."""

    def forward(self, x, mask=None):
        if mask is not None:
            lengths = mask.sum(dim=-1)  # (B, 1)
            mask = (torch.arange(x.shape[1]) < lengths[..., None])
        return super().forward(x, mask)


def test_encoder_layer_that_assumes_padding_at_the_end_is_named():
    result = check_EncoderLayer(EncoderLayerFromLengths)
    assert result.status is Status.FAILED and "start of a row" in result.hint, result.message


def test_encoder_layer_that_needs_a_mask_is_told_none_is_allowed():
    class NeedsMask(EncoderLayerWritten):
        def forward(self, x, mask=None):
            return super().forward(x, mask.unsqueeze(1).squeeze(1))

    result = check_EncoderLayer(NeedsMask)
    assert result.status is Status.FAILED and "mask=None" in result.hint and "mask=None" in result.summary


def test_encoder_layer_with_additive_float_masks_and_left_padding_passes():
    """Correct, written differently: the self-attention gets the mask as it is, the dropouts are functional."""

    class Functional(EncoderLayerWritten):
        def forward(self, x, mask=None):
            def sub(h, f, p):
                return nn.functional.dropout(f(h), p, self.training)

            attend = lambda h: self.self_attention(h, h, h, mask)[0]  # noqa: E731
            if self.norm_first:
                x = x + sub(self.norm1(x), attend, self.dropout1.p)
                return x + sub(self.norm2(x), self.feed_forward, self.dropout2.p)
            x = self.norm1(x + sub(x, attend, self.dropout1.p))
            return self.norm2(x + sub(x, self.feed_forward, self.dropout2.p))

    assert check_EncoderLayer(Functional).passed


def test_decoder_layer_with_its_own_causal_mask_is_named():
    def own_causal(layer, y, memory, tgt_mask, src_mask):
        return decoder_post_ln(layer, y, memory, causal_mask(y.shape[1]), src_mask)

    result = check_decoder_layer(own_causal)
    assert result.status is Status.FAILED and "(B, n_t, n_t)" in result.hint, result.message


def test_decoder_layer_class_that_needs_both_masks_is_told_they_are_optional():
    class NeedsMasks(DecoderLayerWritten):
        def forward(self, y, memory, tgt_mask=None, src_mask=None):
            return super().forward(y, memory, tgt_mask.bool(), src_mask.bool())

    result = check_DecoderLayer(NeedsMasks)
    assert result.status is Status.FAILED and "tgt_mask=None" in result.hint, result.message


def test_an_earlier_exercise_still_the_stub_is_named():
    """The learner's EncoderLayer (07) and DecoderLayer (08, if built on their own 07 classes) call their own
    FeedForward: while that is the stub, the check names it instead of saying "not attempted"."""

    class FeedForward(nn.Module):  # noqa: F811 (the learner's, as in the workbook: the stub)
        def __init__(self, d_model, d_ff, dropout=0.1):
            super().__init__()
            raise NotImplementedError()

    class EncoderLayer(EncoderLayerWritten):  # noqa: F811
        def __init__(self, d_model, num_heads, d_ff, dropout=0.1, norm_first=False):
            super().__init__(d_model, num_heads, d_ff, dropout, norm_first)
            self.feed_forward = FeedForward(d_model, d_ff, dropout)

    class DecoderLayer(DecoderLayerWritten):  # noqa: F811
        def __init__(self, d_model, num_heads, d_ff, dropout=0.1, norm_first=False):
            super().__init__(d_model, num_heads, d_ff, dropout, norm_first)
            self.feed_forward = FeedForward(d_model, d_ff, dropout)

    for check, layer in ((check_EncoderLayer, EncoderLayer), (check_DecoderLayer, DecoderLayer)):
        result = check(layer)
        assert result.status is Status.FAILED, result.message
        assert f"Your {layer.__name__} calls your `FeedForward`, which is still the stub" in result.summary
        assert "finish the `FeedForward` exercise above first" in result.hint


def test_an_earlier_exercise_whose_forward_is_the_stub_is_named():
    class FeedForward(FeedForwardFunctional):  # noqa: F811
        def forward(self, x):
            raise NotImplementedError()

    class EncoderLayer(EncoderLayerWritten):  # noqa: F811
        def __init__(self, d_model, num_heads, d_ff, dropout=0.1, norm_first=False):
            super().__init__(d_model, num_heads, d_ff, dropout, norm_first)
            self.feed_forward = FeedForward(d_model, d_ff, dropout)

    result = check_EncoderLayer(EncoderLayer)
    assert result.status is Status.FAILED and "your `FeedForward`, which is still the stub" in result.summary


def test_the_layer_itself_still_the_stub_is_not_attempted_even_on_a_stub_feed_forward():
    class EncoderLayer(nn.Module):  # noqa: F811
        def __init__(self, d_model, num_heads, d_ff, dropout=0.1, norm_first=False):
            super().__init__()
            self.norm_first = norm_first
            raise NotImplementedError()

    assert check_EncoderLayer(EncoderLayer).status is Status.NOT_ATTEMPTED


def test_decoder_layer_class_written_with_keywords_and_functional_dropout_passes():
    """Correct, written differently: keyword calls, functional dropout, one wrapper for the three sub-layers."""

    class Keywords(DecoderLayerWritten):
        def forward(self, y, memory, tgt_mask=None, src_mask=None):
            def wrap(y, f, norm, p):
                if self.norm_first:
                    return y + nn.functional.dropout(f(norm(y)), p, self.training)
                return norm(y + nn.functional.dropout(f(y), p, self.training))

            y = wrap(y, lambda h: self.self_attention(query=h, key=h, value=h, mask=tgt_mask)[0], self.norm1,
                     self.dropout1.p)
            y = wrap(y, lambda h: self.cross_attention(query=h, key=memory, value=memory, mask=src_mask)[0],
                     self.norm2, self.dropout2.p)
            return wrap(y, self.feed_forward, self.norm3, self.dropout3.p)

    result = check_DecoderLayer(Keywords)
    assert result.passed, result.message
