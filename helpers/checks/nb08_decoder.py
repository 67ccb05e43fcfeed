"""Check of notebook 08's exercise: the decoder layer's forward pass (post-LN, as in the paper)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from helpers.attention import causal_mask, padding_mask
from helpers.checks.core import Case, Mistake, check, generator, randn, seeded
from helpers.transformer import DecoderLayer


def _decoder_variant(layer: DecoderLayer, y: Tensor, memory: Tensor, tgt_mask: Tensor, src_mask: Tensor, *,
                     use_tgt_mask: bool = True, use_src_mask: bool = True, cross_from: str = "memory",
                     residual: bool = True, pre_ln: bool = False, skip_ff: bool = False,
                     swap_cross: bool = False) -> Tensor:
    """The post-LN decoder layer with switches that reproduce the typical mistakes."""
    def add(x: Tensor, sub: Tensor) -> Tensor:
        return x + sub if residual else sub

    self_mask = tgt_mask if use_tgt_mask else None
    cross_mask = src_mask if use_src_mask else None
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


def _mistake(hint: str, **switches: object) -> Mistake:
    return Mistake(hint, lambda *args: _decoder_variant(*args, **switches))  # type: ignore[arg-type]


MISTAKES = [
    _mistake("the causal mask is not used: pass tgt_mask to the self-attention, or each position sees the future.",
             use_tgt_mask=False),
    _mistake("the cross-attention must take its keys and values from the encoder output (memory), "
             "queries from the decoder.", cross_from="self"),
    _mistake("the cross-attention ignores the source padding: pass src_mask to it.", use_src_mask=False),
    _mistake("a residual connection is missing: each sub-layer's output is added to its input, "
             "norm(y + sublayer(y)).", residual=False),
    _mistake("this is the pre-LN order (y + sublayer(norm(y))); the paper's layer is post-LN: "
             "norm(y + sublayer(y)).", pre_ln=True),
    _mistake("the feed-forward sub-layer is missing (norm3(y + feed_forward(y))).", skip_ff=True),
    _mistake("queries and keys are swapped in the cross-attention: queries come from the decoder (y), "
             "keys and values from memory.", swap_cross=True),
]


@check(reference=lambda layer, *inputs: layer(*inputs), mistakes=MISTAKES,
       passed="{cases} cases: causal self-attention, cross-attention with source padding, float32 and float64.")
def check_decoder_layer() -> Iterator[Case]:
    """Check `decoder_layer(layer, y, memory, tgt_mask, src_mask) -> (B, n_t, d_model)`.

    `layer` is a `helpers.transformer.DecoderLayer` (post-LN, as in the paper); the candidate
    uses its `self_attention`, `cross_attention`, `feed_forward`, `norm1`, `norm2`, `norm3`.
    """
    d_model, heads = 16, 4
    for seed, (name, n_t, n_s, dtype) in enumerate([
        # Equal lengths first: then even swapped queries and keys run, and can be named.
        ("4 target and 4 source tokens (the first source sentence padded)", 4, 4, torch.float32),
        ("3 target tokens, 5 source tokens", 3, 5, torch.float32),
        ("6 target tokens, 4 source tokens, float64", 6, 4, torch.float64),
    ]):
        with seeded(80 + seed), torch.no_grad():
            layer = DecoderLayer(d_model, heads, 2 * d_model, dropout=0.0).to(dtype).eval()
            for p in layer.parameters():
                p.add_(0.2 * torch.randn_like(p))
        g = generator(90 + seed)
        y, memory = randn(g, 2, n_t, d_model, dtype=dtype), randn(g, 2, n_s, d_model, dtype=dtype)
        src = torch.ones(2, n_s, dtype=torch.long)
        src[0, -2:] = 0
        yield Case(name, (layer, y, memory, causal_mask(n_t), padding_mask(src, 0)))
