"""Checks for notebooks 07 and 08: LayerNorm from scratch, and the decoder layer's forward pass."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor

from helpers.attention import causal_mask, padding_mask
from helpers.checks.core import CheckResult, Probe, run_check
from helpers.transformer import DecoderLayer


def _layer_norm_variant(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5, *, eps_outside: bool = False,
                        unbiased: bool = False, dims: tuple[int, ...] = (-1,), affine: bool = True,
                        no_eps: bool = False) -> Tensor:
    """LayerNorm with switches that reproduce the typical mistakes."""
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=unbiased)
    if eps_outside:
        normed = (x - mean) / (var.sqrt() + eps)
    elif no_eps:
        normed = (x - mean) / var.sqrt()
    else:
        normed = (x - mean) / torch.sqrt(var + eps)
    return normed * weight + bias if affine else normed


def check_layer_norm(candidate: object) -> CheckResult:
    """Check `layer_norm(x, weight, bias, eps=1e-5)`: normalise `(..., d_model)` over the last dimension."""

    def body(probe: Probe) -> str:
        cases = [
            ("a (2, 5, 8) batch with a large eps (0.5)", (2, 5, 8), 0.5, torch.float32),
            ("a (3, 4, 6) batch in float64, eps 1e-5", (3, 4, 6), 1e-5, torch.float64),
            ("rows of nearly constant values (variance ~ 1e-6), eps 1e-3", (2, 3, 16), 1e-3, torch.float64),
            ("a single token vector (8,)", (8,), 1e-5, torch.float32),
        ]
        for seed, (case, shape, eps, dtype) in enumerate(cases):
            g = torch.Generator().manual_seed(70 + seed)
            x = torch.randn(shape, generator=g, dtype=dtype) * 3 + 2
            if "constant" in case:
                x = 5 + 1e-3 * torch.randn(shape, generator=g, dtype=dtype)
            d = shape[-1]
            weight = torch.rand(d, generator=g, dtype=dtype) + 0.5
            bias = torch.randn(d, generator=g, dtype=dtype)
            expected = torch.nn.functional.layer_norm(x, (d,), weight, bias, eps)

            def variant(inputs: tuple = (x, weight, bias, eps), **switches: object) -> Callable[[], Tensor]:
                return partial(_layer_norm_variant, *inputs, **switches)

            mistakes = [
                ("epsilon belongs inside the square root: (x - mean) / sqrt(var + eps), not sqrt(var) + eps.",
                 variant(eps_outside=True)),
                ("LayerNorm uses the biased variance (divide by d_model, not d_model - 1): "
                 "x.var(dim=-1, unbiased=False), or the mean of the squared deviations.", variant(unbiased=True)),
                ("normalise each token over its features only (dim=-1), not over the whole tensor.",
                 variant(dims=tuple(range(len(shape))))),
                ("you forgot the learned scale and shift: multiply by weight (γ) and add bias (β).",
                 variant(affine=False)),
                ("the variance is the unbiased one AND eps sits outside the square root (the formula "
                 "x.std() + eps of some tutorials): use the biased variance, and sqrt(var + eps).",
                 variant(unbiased=True, eps_outside=True)),
                ("you left out eps, or ignored the eps argument: it keeps the division safe when a row is "
                 "(nearly) constant.", variant(no_eps=True)),
            ]
            if len(shape) == 3:
                mistakes.append(("normalise over the last dimension (the features), not over the tokens (dim=1).",
                                 variant(dims=(1,))))
            probe.expect_close(probe.call(x, weight, bias, eps), expected, case, mistakes, rtol=1e-4, atol=1e-5)
        return f"{probe.cases} cases: batches, float64, nearly constant rows, a single vector; equal to F.layer_norm."

    return run_check("layer_norm", candidate, body)


def _decoder_variant(layer: DecoderLayer, y: Tensor, memory: Tensor, tgt_mask: Tensor, memory_mask: Tensor, *,
                     use_tgt_mask: bool = True, use_memory_mask: bool = True, cross_from: str = "memory",
                     residual: bool = True, pre_ln: bool = False, skip_ff: bool = False,
                     swap_cross: bool = False) -> Tensor:
    """The post-LN decoder layer with switches that reproduce the typical mistakes."""
    def add(x: Tensor, sub: Tensor) -> Tensor:
        return x + sub if residual else sub

    self_mask = tgt_mask if use_tgt_mask else None
    cross_mask = memory_mask if use_memory_mask else None
    if pre_ln:
        h = layer.norm1(y)
        y = y + layer.self_attention(h, h, h, self_mask)[0]
        h = layer.norm2(y)
        y = y + layer.cross_attention(h, memory, memory, cross_mask)[0]
        return y + layer.feed_forward(layer.norm3(y))
    y = layer.norm1(add(y, layer.self_attention(y, y, y, self_mask)[0]))
    if swap_cross:
        cross = layer.cross_attention(memory, y, y, cross_mask)[0]  # queries from the encoder (n_s = n_t here)
    else:
        source = memory if cross_from == "memory" else y
        cross = layer.cross_attention(y, source, source, cross_mask if cross_from == "memory" else self_mask)[0]
    y = layer.norm2(add(y, cross))
    if skip_ff:
        return layer.norm3(y)
    return layer.norm3(add(y, layer.feed_forward(y)))


def check_decoder_layer(candidate: object) -> CheckResult:
    """Check `decoder_layer(layer, y, memory, tgt_mask, memory_mask) -> (B, n_t, d_model)`.

    `layer` is a `helpers.transformer.DecoderLayer` (post-LN, as in the paper); the candidate
    uses its `self_attention`, `cross_attention`, `feed_forward`, `norm1`, `norm2`, `norm3`.
    """

    def body(probe: Probe) -> str:
        d_model, heads = 16, 4
        cases = [
            # Equal lengths first: then even swapped queries and keys run, and can be named.
            ("4 target and 4 source tokens (the first source sentence padded)", 4, 4, torch.float32),
            ("3 target tokens, 5 source tokens", 3, 5, torch.float32),
            ("6 target tokens, 4 source tokens, float64", 6, 4, torch.float64),
        ]
        for seed, (case, n_t, n_s, dtype) in enumerate(cases):
            torch_state = torch.random.get_rng_state()
            torch.manual_seed(80 + seed)  # the layer's own initialisation; the global state is restored below
            layer = DecoderLayer(d_model, heads, 2 * d_model, dropout=0.0).to(dtype).eval()
            with torch.no_grad():
                for p in layer.parameters():
                    p.add_(0.2 * torch.randn_like(p))
            torch.random.set_rng_state(torch_state)
            g = torch.Generator().manual_seed(90 + seed)
            y = torch.randn(2, n_t, d_model, generator=g, dtype=dtype)
            memory = torch.randn(2, n_s, d_model, generator=g, dtype=dtype)
            src = torch.ones(2, n_s, dtype=torch.long)
            src[0, -2:] = 0
            tgt_mask, memory_mask = causal_mask(n_t), padding_mask(src, 0)
            args = (layer, y, memory, tgt_mask, memory_mask)

            def variant(args: tuple = args, **switches: object) -> Callable[[], Tensor]:
                return partial(_decoder_variant, *args, **switches)

            mistakes = [
                ("the causal mask is not used: pass tgt_mask to the self-attention, or each position sees the future.",
                 variant(use_tgt_mask=False)),
                ("the cross-attention must take its keys and values from the encoder output (memory), "
                 "queries from the decoder.", variant(cross_from="self")),
                ("the cross-attention ignores the source padding: pass memory_mask to it.",
                 variant(use_memory_mask=False)),
                ("a residual connection is missing: each sub-layer's output is added to its input, "
                 "norm(y + sublayer(y)).", variant(residual=False)),
                ("this is the pre-LN order (y + sublayer(norm(y))); the paper's layer is post-LN: "
                 "norm(y + sublayer(y)).", variant(pre_ln=True)),
                ("the feed-forward sub-layer is missing (norm3(y + feed_forward(y))).", variant(skip_ff=True)),
                ("queries and keys are swapped in the cross-attention: queries come from the decoder (y), "
                 "keys and values from memory.", variant(swap_cross=True)),
            ]
            with torch.no_grad():
                expected = layer(y, memory, tgt_mask, memory_mask)
                actual = probe.call(*args)
            probe.expect_close(actual, expected, case, mistakes, rtol=1e-4, atol=1e-5)
        return f"{probe.cases} cases: causal self-attention, cross-attention with source padding, float32 and float64."

    return run_check("decoder_layer", candidate, body)

