"""Checks of notebook 08's exercises: the decoder layer's forward pass (post-LN, as in the paper), then the
`DecoderLayer` class (both norm placements), checked against nn.TransformerDecoderLayer's weights."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from helpers.attention import causal_mask, padding_mask
from helpers.checks.core import Case, Mistake, check, generator, randn, seeded
from helpers.checks.nb07_encoder import ModuleRun, compare_parts, torch_layer_copy
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


# ---- DecoderLayer -----------------------------------------------------------------------------------


class _DecoderLayerVariant(DecoderLayer):
    """helpers' DecoderLayer with switches that reproduce the typical mistakes (class attributes)."""

    wiring: str | None = None  # "post" or "pre": that order whatever norm_first asks
    cross_from = "memory"  # "self": keys and values from the decoder's own states
    use_tgt_mask = True
    use_src_mask = True
    cross_first = False  # the cross-attention before the masked self-attention
    third_norm = True

    def forward(self, y: Tensor, memory: Tensor, tgt_mask: Tensor | None = None,  # type: ignore[override]
                src_mask: Tensor | None = None) -> Tensor:
        tgt = tgt_mask if self.use_tgt_mask else None
        src = src_mask if self.use_src_mask else None

        def attend(h: Tensor) -> Tensor:
            return self.self_attention(h, h, h, tgt)[0]

        def cross(h: Tensor) -> Tensor:
            source = memory if self.cross_from == "memory" else h
            return self.cross_attention(h, source, source, src)[0]

        first, second = (cross, attend) if self.cross_first else (attend, cross)
        norm3: Callable[[Tensor], Tensor] = self.norm3 if self.third_norm else nn.Identity()
        pre = (self.wiring or ("pre" if self.norm_first else "post")) == "pre"
        for f, norm, drop in ((first, self.norm1, self.dropout1), (second, self.norm2, self.dropout2),
                              (self.feed_forward, norm3, self.dropout3)):
            y = y + drop(f(norm(y))) if pre else norm(y + drop(f(y)))
        return y


def _layer_mistake(hint: str, **switches: object) -> Mistake:
    return Mistake(hint, type("DecoderLayerMistake", (_DecoderLayerVariant,), switches))


DECODER_LAYER_MISTAKES = [
    _layer_mistake("the self-attention ignores tgt_mask: without the causal mask each position reads the future.",
                   use_tgt_mask=False),
    _layer_mistake("the cross-attention takes its keys and values from the decoder's own states; they come from "
                   "the encoder output (memory), the queries from the decoder.", cross_from="self"),
    _layer_mistake("the cross-attention ignores src_mask, so the target attends to the source's padding.",
                   use_src_mask=False),
    _layer_mistake("the sub-layers are in the wrong order: first the masked self-attention (norm1, dropout1), "
                   "then the cross-attention (norm2, dropout2), then the feed-forward network.", cross_first=True),
    _layer_mistake("the third sub-layer has no norm: the feed-forward network is wrapped like the other two, "
                   "with norm3.", third_norm=False),
    _layer_mistake("norm_first=False asks for the paper's post-LN order, norm(y + sublayer(y)); you wired pre-LN.",
                   wiring="pre"),
    _layer_mistake("norm_first=True asks for pre-LN, y + sublayer(norm(y)); you wired post-LN.", wiring="post"),
]

DECODER_NAMES = ("self_attention and cross_attention (two MultiHeadAttention), feed_forward (a FeedForward), "
                 "norm1, norm2, norm3 and dropout1, dropout2, dropout3")


@check(reference=DecoderLayer, mistakes=DECODER_LAYER_MISTAKES, compare=compare_parts,
       passed="{cases} cases: post-LN and pre-LN, causal and padding masks, float64; outputs, the gradients of y, "
              "memory and every weight in eval() and train(), parameter count: equal to nn.TransformerDecoderLayer "
              "with its weights copied.")
def check_DecoderLayer() -> Iterator[Case]:  # noqa: N802 (named after the exercise's class)
    """Check the class `DecoderLayer(d_model, num_heads, d_ff, dropout=0.1, norm_first=False)`.

    `forward(y (B, n_t, d_model), memory (B, n_s, d_model), tgt_mask=None, src_mask=None) -> (B, n_t, d_model)`.
    """
    d_model, heads, d_ff, dropout = 16, 4, 24, 0.2
    for seed, (name, norm_first, n_t, n_s, dtype, keyword) in enumerate([
        # Equal lengths first: then even keys from the decoder run with src_mask, and can be named.
        ("the post-LN layer (norm_first=False), 5 target and 5 source tokens, the second source padded",
         False, 5, 5, torch.float32, False),
        ("the pre-LN layer (norm_first=True), 4 target and 6 source tokens, tgt_mask=..., src_mask=...",
         True, 4, 6, torch.float32, True),
        ("the post-LN layer in float64, 6 target and 3 source tokens", False, 6, 3, torch.float64, False),
        ("the pre-LN layer in float64, 3 target and 4 source tokens", True, 3, 4, torch.float64, False),
    ]):
        layer = torch_layer_copy(DecoderLayer, d_model, heads, d_ff, dropout, norm_first, 800 + seed, dtype)
        state = layer.state_dict()
        g = generator(810 + seed)
        y, memory = randn(g, 2, n_t, d_model, dtype=dtype), randn(g, 2, n_s, d_model, dtype=dtype)
        src = torch.ones(2, n_s, dtype=torch.long)
        src[1, -2:] = 0
        tgt_mask, src_mask = causal_mask(n_t), padding_mask(src, 0)
        inputs = (y, memory) if keyword else (y, memory, tgt_mask, src_mask)
        run = ModuleRun((d_model, heads, d_ff), state, inputs, {0: "y", 1: "memory"},
                        kwargs={"tgt_mask": tgt_mask, "src_mask": src_mask} if keyword else {},
                        seed=820 + seed, names=DECODER_NAMES,
                        init_kwargs={"dropout": dropout, "norm_first": norm_first})
        yield Case(name, run=run)
