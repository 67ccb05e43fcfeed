"""Checks of notebook 08's exercises: the decoder layer's forward pass (post-LN, as in the paper), then the
`DecoderLayer` class (both norm placements), checked against nn.TransformerDecoderLayer's weights."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from helpers.attention import causal_mask, padding_mask
from helpers.checks.core import Case, Clue, Mistake, Term, check, generator, randn, seeded
from helpers.checks.nb07_encoder import (
    PADDING_ANYWHERE,
    ModuleRun,
    _default,
    _explicit,
    _from_lengths,
    _size,
    compare_parts,
    padding_rows,
    torch_layer_copy,
)
from helpers.transformer import DecoderLayer

#: The telling pieces of each exercise's solution: no Hint 1 or 2, no ❌ hint may contain one.
SOLUTION_FRAGMENTS: dict[str, list[str]] = {
    "decoder_layer": ["self_attention(y, y, y, tgt_mask)", "cross_attention(y, memory, memory, src_mask)",
                      "layer.norm1(y + ", "layer.norm2(y + ", "layer.norm3(y + "],
    "DecoderLayer": ["self.self_attention(h, h, h, tgt_mask)", "self.cross_attention(h, memory, memory, src_mask)",
                     "y + dropout(sublayer(norm(y)))", "norm(y + dropout(sublayer(y)))",
                     "(self.feed_forward, self.norm3, self.dropout3)",
                     "MultiHeadAttention(d_model, num_heads, dropout=dropout)", "FeedForward(d_model, d_ff, dropout)"],
}

TGT_ROWS = ("tgt_mask may be (B, n_t, n_t), causal and the target's padding at once: use the tgt_mask you are "
            "given, do not build a causal mask of your own.")


def _decoder_variant(layer: DecoderLayer, y: Tensor, memory: Tensor, tgt_mask: Tensor, src_mask: Tensor, *,
                     use_tgt_mask: bool = True, use_src_mask: bool = True, cross_from: str = "memory",
                     residual: bool = True, pre_ln: bool = False, skip_ff: bool = False,
                     swap_cross: bool = False, own_causal: bool = False, src_from_lengths: bool = False) -> Tensor:
    """The post-LN decoder layer with switches that reproduce the typical mistakes."""
    def add(x: Tensor, sub: Tensor) -> Tensor:
        return x + sub if residual else sub

    if own_causal:
        tgt_mask = causal_mask(y.shape[1], device=y.device)
    if src_from_lengths:
        src_mask = _from_lengths(src_mask)
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
    _mistake("the feed-forward sub-layer is missing: the third sub-layer wraps feed_forward with norm3.",
             skip_ff=True),
    _mistake("queries and keys are swapped in the cross-attention: queries come from the decoder (y), "
             "keys and values from memory.", swap_cross=True),
    _mistake(TGT_ROWS, own_causal=True),
    _mistake(PADDING_ANYWHERE, src_from_lengths=True),
]

DECODER_FUNCTION_CONTRACT = [
    Term("tgt_mask (n_t, n_t): causal", "a causal (n_t, n_t) tgt_mask", MISTAKES[0].wrong, "causal mask is not used"),
    Term("tgt_mask (B, n_t, n_t): causal and target padding", "a (B, n_t, n_t) tgt_mask", MISTAKES[7].wrong,
         "(B, n_t, n_t)"),
    Term("src_mask (B, 1, n_s), padding at the end of a row", "padding at the end", MISTAKES[2].wrong,
         "ignores the source padding"),
    Term("src_mask (B, 1, n_s), padding at the start of a row", "padding at the start", MISTAKES[8].wrong,
         "start of a row"),
]


def target_mask(g: torch.Generator, batch: int, n_t: int) -> Tensor:
    """`(B, n_t, n_t)`: causal, and the target's own padding at the end of some rows (a query keeps itself)."""
    tokens = padding_rows(g, batch, n_t, 0, "end")
    return (causal_mask(n_t) & padding_mask(tokens, 0)) | torch.eye(n_t, dtype=torch.bool)


@check(reference=lambda layer, *inputs: layer(*inputs), mistakes=MISTAKES, contract=DECODER_FUNCTION_CONTRACT,
       passed="{cases} cases: a causal (n_t, n_t) and a (B, n_t, n_t) tgt_mask, source padding at the end and at "
              "the start of rows, float32 and float64.")
def check_decoder_layer() -> Iterator[Case]:
    """Check `decoder_layer(layer, y, memory, tgt_mask, src_mask) -> (B, n_t, d_model)`.

    `layer` is a `helpers.transformer.DecoderLayer` (post-LN, as in the paper); the candidate
    uses its `self_attention`, `cross_attention`, `feed_forward`, `norm1`, `norm2`, `norm3`.
    The contract (`DECODER_FUNCTION_CONTRACT`): tgt_mask `(n_t, n_t)` or `(B, n_t, n_t)`; src_mask `(B, 1, n_s)`
    with padding at the end or the start of a row. Lengths and pad ids are drawn from a seeded generator.
    """
    d_model, heads = 16, 4
    g = generator(90)
    for seed, (name, n_t, n_s, dtype, rows, at) in enumerate([
        # Equal lengths first: then even swapped queries and keys run, and can be named.
        ("4 target and 4 source tokens, a causal (n_t, n_t) tgt_mask, source padding at the end of a row", 4, 4,
         torch.float32, False, "end"),
        ("3 target tokens, 5 source tokens, a causal (n_t, n_t) tgt_mask, source padding at the start of a row", 3,
         5, torch.float32, False, "both"),
        ("6 target tokens, 4 source tokens, float64, a (B, n_t, n_t) tgt_mask (causal and target padding)", 6, 4,
         torch.float64, True, "end"),
    ]):
        with seeded(80 + seed), torch.no_grad():
            layer = DecoderLayer(d_model, heads, 2 * d_model, dropout=0.0).to(dtype).eval()
            for p in layer.parameters():
                p.add_(0.2 * torch.randn_like(p))
        batch, pad_id = _size(g, 2, 3), _size(g, 0, 3)
        y, memory = randn(g, batch, n_t, d_model, dtype=dtype), randn(g, batch, n_s, d_model, dtype=dtype)
        src = padding_rows(g, batch, n_s, pad_id, at)
        tgt_mask = target_mask(g, batch, n_t) if rows else causal_mask(n_t)
        yield Case(name, (layer, y, memory, tgt_mask, padding_mask(src, pad_id)))


# ---- DecoderLayer -----------------------------------------------------------------------------------


class _DecoderLayerVariant(DecoderLayer):
    """helpers' DecoderLayer with switches that reproduce the typical mistakes (class attributes)."""

    wiring: str | None = None  # "post" or "pre": that order whatever norm_first asks
    cross_from = "memory"  # "self": keys and values from the decoder's own states
    use_tgt_mask = True
    use_src_mask = True
    cross_first = False  # the cross-attention before the masked self-attention
    third_norm = True
    dropout_after = False  # dropout on the sum (pre-LN) or after the norm (post-LN), not on the branch
    own_causal = False  # a causal mask built from n_t instead of tgt_mask
    src_from_lengths = False  # src_mask rebuilt from the rows' lengths
    needs_mask = ""  # "tgt_mask" or "src_mask": fails when that mask is None

    def forward(self, y: Tensor, memory: Tensor, tgt_mask: Tensor | None = None,  # type: ignore[override]
                src_mask: Tensor | None = None) -> Tensor:
        if self.needs_mask == "tgt_mask":
            tgt_mask = tgt_mask.bool()  # type: ignore[union-attr]
        if self.needs_mask == "src_mask":
            src_mask = src_mask.bool()  # type: ignore[union-attr]
        if self.own_causal:
            tgt_mask = causal_mask(y.shape[1], device=y.device)
        if self.src_from_lengths and src_mask is not None:
            src_mask = _from_lengths(src_mask)
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
            if self.dropout_after:
                y = drop(y + f(norm(y))) if pre else drop(norm(y + f(y)))
            else:
                y = y + drop(f(norm(y))) if pre else norm(y + drop(f(y)))
        return y


def _layer_mistake(hint: str, **switches: object) -> Mistake:
    return Mistake(hint, type("DecoderLayerMistake", (_DecoderLayerVariant,), switches))


NORM_FIRST_DEFAULT = "norm_first is optional: left out, it is False (the paper's post-LN); your default differs."

DECODER_LAYER_MISTAKES = [
    Mistake(NORM_FIRST_DEFAULT, _default(DecoderLayer, norm_first=True)),
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
    _layer_mistake("norm_first=False asks for the paper's post-LN order, the norm after the addition; you wired "
                   "pre-LN.", wiring="pre"),
    _layer_mistake("norm_first=True asks for pre-LN, the norm at the start of each branch; you wired post-LN.",
                   wiring="post"),
    _layer_mistake("dropout goes on each sub-layer's output before it is added to y, not on the sum or after the "
                   "norm.", dropout_after=True),
    _layer_mistake(TGT_ROWS, own_causal=True),
    _layer_mistake(PADDING_ANYWHERE, src_from_lengths=True),
]

NONE_MASKS = ("both masks are optional: tgt_mask=None means no causal mask, src_mask=None no source padding; your "
              "layer must run with either left out (pass it on as it is: MultiHeadAttention accepts None).")

DECODER_DEFAULTS = [Clue("dropout is optional: left out, it is 0.1, as the signature says; your default differs.",
                         _explicit(dropout=0.1))]

def _needs(mask: str) -> type:
    return type("DecoderLayerMistake", (_DecoderLayerVariant,), {"needs_mask": mask})


DECODER_CONTRACT = [
    Term("norm_first=False: post-LN", "post-LN layer (norm_first=False)", DECODER_LAYER_MISTAKES[6].wrong,
         "you wired pre-LN"),
    Term("norm_first=True: pre-LN", "pre-LN layer (norm_first=True)", DECODER_LAYER_MISTAKES[7].wrong,
         "you wired post-LN"),
    Term("norm_first left out: post-LN", "norm_first left out", DECODER_LAYER_MISTAKES[0].wrong,
         "norm_first is optional"),
    Term("dropout left out: 0.1", "dropout left out", _default(DecoderLayer, dropout=0.0), "dropout is optional"),
    Term("dropout 0 < p < 1 in train(), on each sub-layer's output", "in train()", DECODER_LAYER_MISTAKES[8].wrong,
         "before it is added"),
    Term("tgt_mask (n_t, n_t): causal", "a causal (n_t, n_t) tgt_mask", DECODER_LAYER_MISTAKES[1].wrong,
         "ignores tgt_mask"),
    Term("tgt_mask (B, n_t, n_t): causal and target padding", "a (B, n_t, n_t) tgt_mask",
         DECODER_LAYER_MISTAKES[9].wrong, "(B, n_t, n_t)"),
    Term("tgt_mask=None", "tgt_mask=None", _needs("tgt_mask"), "tgt_mask=None"),
    Term("src_mask (B, 1, n_s), padding at the end of a row", "padding at the end", DECODER_LAYER_MISTAKES[3].wrong,
         "ignores src_mask"),
    Term("src_mask (B, 1, n_s), padding at the start of a row", "padding at the start",
         DECODER_LAYER_MISTAKES[10].wrong, "start of a row"),
    Term("src_mask=None", "src_mask=None", _needs("src_mask"), "src_mask=None"),
]

DECODER_NAMES = ("self_attention and cross_attention (two MultiHeadAttention), feed_forward (a FeedForward), "
                 "norm1, norm2, norm3 and dropout1, dropout2, dropout3")


@check(reference=DecoderLayer, mistakes=DECODER_LAYER_MISTAKES, clues=DECODER_DEFAULTS, compare=compare_parts,
       contract=DECODER_CONTRACT,
       passed="{cases} cases: post-LN and pre-LN, causal (n_t, n_t) and (B, n_t, n_t) target masks, source padding "
              "at the end and at the start of rows, masks left out, dropout 0 < p < 1, float64; outputs, the "
              "gradients of y, memory and every weight in eval() and train(), parameter count: equal to "
              "nn.TransformerDecoderLayer with its weights copied.")
def check_DecoderLayer() -> Iterator[Case]:  # noqa: N802 (named after the exercise's class)
    """Check the class `DecoderLayer(d_model, num_heads, d_ff, dropout=0.1, norm_first=False)`.

    `forward(y (B, n_t, d_model), memory (B, n_s, d_model), tgt_mask=None, src_mask=None) -> (B, n_t, d_model)`.
    The contract (`DECODER_CONTRACT`): both norm placements, norm_first False and dropout 0.1 when left out;
    tgt_mask `(n_t, n_t)`, `(B, n_t, n_t)` or None; src_mask `(B, 1, n_s)` with padding at the end or the start
    of a row, or None. Lengths, pad ids and dropout probabilities are drawn from a seeded generator.
    """
    g = generator(800)
    d_model, heads, d_ff = 16, 4, 24
    p = round(0.15 + 0.3 * float(torch.rand(1, generator=g)), 2)
    # (name, norm_first / dropout (None = left out), n_t, n_s, dtype, tgt layout, src padding, masks as keywords)
    plans = [
        # Equal lengths first: then even keys from the decoder run with src_mask, and can be named.
        (f"the post-LN layer (norm_first=False), dropout {p} in train() and eval(), 5 target and 5 source tokens, "
         "a causal (n_t, n_t) tgt_mask, source padding at the end of rows", False, p, 5, 5, torch.float32, "causal",
         "end", False),
        (f"the pre-LN layer (norm_first=True), dropout {p} in train() and eval(), 4 target and 6 source tokens, "
         "a (B, n_t, n_t) tgt_mask=..., src_mask=... with padding at the start of some rows", True, p, 4, 6,
         torch.float32, "rows", "both", True),
        ("the post-LN layer (norm_first=False) in float64, dropout 0.2, 6 target and 3 source tokens, tgt_mask=None",
         False, 0.2, 6, 3, torch.float64, None, "end", False),
        ("the pre-LN layer (norm_first=True) in float64, dropout 0.2, 3 target and 4 source tokens, src_mask=None",
         True, 0.2, 3, 4, torch.float64, "causal", None, False),
        ("norm_first left out (post-LN) and dropout left out (0.1), 4 target and 5 source tokens", None, None, 4, 5,
         torch.float32, "causal", "end", False),
    ]
    for seed, (name, norm_first, dropout, n_t, n_s, dtype, tgt_layout, src_at, keyword) in enumerate(plans):
        layer = torch_layer_copy(DecoderLayer, d_model, heads, d_ff, 0.1 if dropout is None else dropout,
                                 bool(norm_first), 801 + seed, dtype)
        batch, pad_id = _size(g, 2, 3), _size(g, 0, 3)
        y, memory = randn(g, batch, n_t, d_model, dtype=dtype), randn(g, batch, n_s, d_model, dtype=dtype)
        tgt_mask = None if tgt_layout is None else target_mask(g, batch, n_t) if tgt_layout == "rows" \
            else causal_mask(n_t)
        src_mask = None if src_at is None else padding_mask(padding_rows(g, batch, n_s, pad_id, src_at), pad_id)
        inputs = (y, memory) if keyword else (y, memory, tgt_mask, src_mask)
        init_kwargs = {k: v for k, v in (("dropout", dropout), ("norm_first", norm_first)) if v is not None}
        run = ModuleRun((d_model, heads, d_ff), layer.state_dict(), inputs, {0: "y", 1: "memory"},
                        kwargs={"tgt_mask": tgt_mask, "src_mask": src_mask} if keyword else {},
                        seed=820 + seed, names=DECODER_NAMES, init_kwargs=init_kwargs,
                        if_raised=NONE_MASKS if tgt_mask is None or src_mask is None else "")
        yield Case(name, run=run)
