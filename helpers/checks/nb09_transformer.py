"""Checks of notebook 09's exercises: the Transformer assembly (a class), the label-smoothed loss, the warm-up
schedule, one training step, and greedy decoding with a trained-or-not Transformer.

Each check carries its exercise's contract (`core.Term`): what the statement allows, the generated cases that
cover it, an implementation wrong only there, and the words its ❌ hint uses.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

# Stop ends a case with a Failure, as core.unpack_or_stop does: a class whose weights do not fit cannot be run.
from helpers.checks.core import (
    Case,
    Failure,
    Kind,
    Mistake,
    Stop,
    Term,
    check,
    generator,
    key_mismatch,
    randn,
    seeded,
)
from helpers.training import train_step, warmup_schedule
from helpers.transformer import Transformer

BOS_ID, EOS_ID, PAD_ID = 1, 2, 0

#: The telling pieces of each exercise's solution: no Hint 1, Hint 2 or ❌ hint may contain one.
SOLUTION_FRAGMENTS: dict[str, list[str]] = {
    "Transformer": ["math.sqrt(self.d_model)", "self.output.weight = self.src_embedding.weight",
                    "& causal_mask(", "padding_mask(src, self.pad_id)", "std=d_model**-0.5",
                    "self.positional(self.src_embedding(src)"],
    "warmup_rate": ["d_model**-0.5 *", "step**-0.5", "step * warmup_steps**-1.5", "warmup_steps**-1.5"],
    "label_smoothed_loss": ["log_softmax(dim=-1)", "gather(-1, targets.unsqueeze(-1))", "targets != pad_id",
                            "log_p.mean(dim=-1)", "(1 - smoothing) * right"],
    "train_step": ["optimizer.zero_grad()", "loss.backward()", "optimizer.step()", "scheduler.step()",
                   "loss.item()", "label_smoothing=0.1", "ignore_index=PAD"],
    "greedy_decode": ["logits[:, -1]", "argmax(dim=-1)", "torch.cat([out, ", "next_token.unsqueeze(1)",
                      "torch.full((src.shape[0], 1), bos_id", "model.encode(src, src_mask)"],
}


# ---- greedy decoding ------------------------------------------------------------------------------


def _sentences(tokens: Tensor, eos_id: int) -> Tensor:
    """Each row up to and including its first EOS (what follows does not count), -1 after it: `(B, n)`."""
    rows = []
    for row in tokens.tolist():
        out = []
        for token in row:
            out.append(int(token))
            if token == eos_id:
                break
        rows.append(out)
    width = max((len(r) for r in rows), default=0)
    return torch.tensor([r + [-1] * (width - len(r)) for r in rows], dtype=torch.long).reshape(len(rows), width)


def _decode_run(model: Transformer, src: Tensor, bos_id: int, eos_id: int,
                max_len: int) -> Callable[[Callable[..., object]], object]:
    def run(decode: Callable[..., object]) -> object:
        out = decode(model, src.clone(), bos_id, eos_id, max_len)
        if not isinstance(out, Tensor):
            raise Stop(Failure(Kind.WRONG_TYPE, f"your function returned a {type(out).__name__}, expected a tensor "
                               "of token ids (B, n)", "return the tensor of generated token ids, BOS first."))
        if out.ndim != 2 or out.shape[0] != src.shape[0]:
            raise Stop(Failure(Kind.WRONG_SHAPE, f"the output has shape {tuple(out.shape)}, "
                               f"expected ({src.shape[0]}, n)", "one row of token ids per source sentence."))
        return _sentences(out, eos_id)

    return run


def _compare_decoded(actual: object, expected: object, what: str, tolerance: tuple[float, float]) -> Failure | None:
    """Token ids compare as sentences: each row up to its first EOS, or all of it if it has none."""
    if not isinstance(actual, Tensor) or not isinstance(expected, Tensor):  # a stopped case has no sentences
        return Failure(Kind.WRONG_TYPE, "no tensor of token ids to compare")
    got = [[t for t in row if t >= 0] for row in actual.tolist()]
    want = [[t for t in row if t >= 0] for row in expected.tolist()]
    wrong = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
    return None if wrong is None else Failure(Kind.WRONG_VALUES, f"sentence {wrong} decodes to {got[wrong]}, "
                                              f"expected {want[wrong]}")


@torch.no_grad()
def _greedy_variant(model: Transformer, src: Tensor, bos_id: int, eos_id: int, max_len: int, *, position: int = -1,
                    argmax_dim: int = -1, with_bos: bool = True, causal: bool = True, source_mask: bool = True,
                    stop_at_any: bool = False, extra_step: bool = False, fixed_bos: bool = False) -> Tensor:
    """Greedy decoding with switches that reproduce the typical mistakes (all off: a right answer)."""
    src_mask, _ = model.masks(src)
    memory = model.encode(src, src_mask)
    start = BOS_ID if fixed_bos else bos_id
    out = torch.full((src.shape[0], 1), start, dtype=torch.long)
    for _ in range(max_len + 1 if extra_step else max_len):
        _, tgt_mask = model.masks(src, out)
        logits = model.decode(out, memory, tgt_mask if causal else None, src_mask if source_mask else None)
        next_token = logits[:, position].argmax(dim=-1) if argmax_dim == -1 else logits.argmax(dim=1)[:, 0]
        out = torch.cat([out, next_token.unsqueeze(1)], dim=1)
        if stop_at_any and bool((next_token == eos_id).any()):
            break
    return out if with_bos else out[:, 1:]


def _greedy(**switches: object) -> Callable[..., Tensor]:
    return lambda model, src, bos_id, eos_id, max_len: _greedy_variant(model, src, bos_id, eos_id, max_len,
                                                                       **switches)


MISTAKES = [
    Mistake("every step used only the prediction made right after BOS: feed everything generated so far and "
            "take the prediction at the last position.", _greedy(position=0)),
    Mistake("argmax over the wrong dimension: pick the most likely token over the vocabulary, at the last "
            "position.", _greedy(argmax_dim=1)),
    Mistake("the output should start with the BOS token, as the decoder's input does.", _greedy(with_bos=False)),
    Mistake("the decoder ran without its causal mask: pass the target mask that model.masks(src, out) returns "
            "(with two layers, an earlier position that sees later tokens changes the last one's state).",
            _greedy(causal=False)),
    Mistake("the cross-attention saw the source's padding: pass the source padding mask to model.decode too.",
            _greedy(source_mask=False)),
    Mistake("you stopped when the first sentence reached EOS: each sentence goes on until its own EOS, and the "
            "loop ends only when every sentence has ended (or after max_len tokens).", _greedy(stop_at_any=True)),
    Mistake("one token too many: generate at most max_len tokens after BOS (the output has at most max_len + 1 "
            "columns); a sentence that never reaches EOS stops there.", _greedy(extra_step=True)),
    Mistake("start from the bos_id argument, not a fixed id: the model's vocabulary decides which id BOS has.",
            _greedy(fixed_bos=True)),
]


def _decoding_model(seed: int, vocab: int, bos_id: int, eos_id: int, eos_bias: float) -> Transformer:
    """A random 2-layer model, sharpened so that each next token depends on what came before."""
    with seeded(seed), torch.no_grad():
        model = Transformer(vocab, vocab, d_model=16, num_heads=2, num_layers=2, d_ff=32, dropout=0.0).eval()
        model.output.weight.mul_(6.0)
        model.output.bias[eos_id] = eos_bias
        model.output.bias[[PAD_ID, bos_id]] = -100.0  # it never predicts PAD or BOS
    return model


def _decoding_case(seed: int, *, bos_id: int, eos_id: int, reach_eos: bool) -> tuple[Transformer, Tensor, int]:
    """A random model and 3 source sentences (row 0 padded at the end, row 1 at the start) that reach EOS at
    different steps, one never (`reach_eos`), or of which none reaches EOS: picked from a pool decoded once."""
    return _decoding_case_cached(seed, bos_id, eos_id, reach_eos)


@functools.cache
def _decoding_case_cached(seed: int, bos_id: int, eos_id: int, reach_eos: bool) -> tuple[Transformer, Tensor, int]:
    g = generator(seed)
    vocab, n_src = 12, int(torch.randint(6, 9, (), generator=g))
    max_len = int(torch.randint(6, 9, (), generator=g))
    allowed = torch.tensor([t for t in range(vocab) if t not in (PAD_ID, bos_id, eos_id)])
    for attempt in range(20):
        model = _decoding_model(seed * 100 + attempt, vocab, bos_id, eos_id, 1.0 if reach_eos else -100.0)
        pool = allowed[torch.randint(len(allowed), (3, 16, n_src), generator=g)]  # end-, start-, not padded
        pads = torch.randint(1, n_src // 2 + 1, (2, 16), generator=g)
        for i in range(16):
            pool[0, i, n_src - int(pads[0, i]):] = PAD_ID
            pool[1, i, :int(pads[1, i])] = PAD_ID
        ends = [[row.index(eos_id) if eos_id in row else None for row in
                 model.greedy_decode(part, bos_id, eos_id, max_len).tolist()] for part in pool]
        if not reach_eos:
            return model, pool[:, 0], max_len
        for i, j, k in itertools.product(range(16), repeat=3):
            if ends[0][i] is not None and ends[1][j] is not None and ends[0][i] != ends[1][j] and ends[2][k] is None:
                src = torch.stack([pool[0, i], pool[1, j], pool[2, k]])
                got = [row.index(eos_id) if eos_id in row else None
                       for row in model.greedy_decode(src, bos_id, eos_id, max_len).tolist()]
                if got == [ends[0][i], ends[1][j], None]:
                    return model, src, max_len
    raise RuntimeError("no batch with EOS at different steps")  # the check's own fault: the reference reports it


def greedy_cases(seed: int) -> Iterator[Case]:
    """The generated cases of `check_greedy_decode`, from one seed."""
    for k, (bos_id, eos_id, reach) in enumerate([(BOS_ID, EOS_ID, True), (4, 7, False), (4, 7, True)]):
        model, src, max_len = _decoding_case(seed + k, bos_id=bos_id, eos_id=eos_id, reach_eos=reach)
        ending = "sentences reach EOS at different steps, one never" if reach else "no sentence reaches EOS"
        yield Case(f"a random model of 2 layers, {src.shape[0]} source sentences of {src.shape[1]} tokens (source "
                   f"padding at the end of row 0, at the start of row 1), bos_id={bos_id}, eos_id={eos_id}, "
                   f"max_len={max_len}: {ending}", run=_decode_run(model, src, bos_id, eos_id, max_len),
                   what="the generated ids")


def _reference_greedy(model: Transformer, src: Tensor, bos_id: int, eos_id: int, max_len: int) -> Tensor:
    return model.greedy_decode(src, bos_id, eos_id, max_len)


GREEDY_CONTRACT = [
    Term("a model of more than one layer (the causal mask matters)", "2 layers", _greedy(causal=False),
         "causal mask"),
    Term("source padding, at the end or at the start of a row", "padding at the end of row 0, at the start",
         _greedy(source_mask=False), "padding mask"),
    Term("sentences that reach EOS at different steps", "EOS at different steps", _greedy(stop_at_any=True),
         "its own EOS"),
    Term("a batch in which no sentence reaches EOS: max_len tokens", "no sentence reaches EOS",
         _greedy(extra_step=True), "max_len"),
    Term("any bos_id and eos_id (not only 1 and 2)", "bos_id=4", _greedy(fixed_bos=True), "bos_id argument"),
]


@check(reference=_reference_greedy, mistakes=MISTAKES, compare=_compare_decoded, contract=GREEDY_CONTRACT,
       passed="{cases} batches of random 2-layer models (padding at both ends of a row, sentences ending at "
              "different steps or never, other BOS and EOS ids): the same sentences as the reference.")
def check_greedy_decode() -> Iterator[Case]:
    """Check `greedy_decode(model, src, bos_id, eos_id, max_len) -> (B, n)` token ids starting with BOS."""
    yield from greedy_cases(100)


# ---- the Transformer assembly (a class) ------------------------------------------------------------

VOCAB_SIZE = 11


class _TransformerVariant(Transformer):
    """The reference assembly with switches that reproduce the typical mistakes (same parameter names)."""

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, d_model: int, num_heads: int, num_layers: int,
                 d_ff: int, dropout: float, share_embeddings: bool = False, pad_id: int = PAD_ID, *,
                 scale: bool = True, positions: bool = True, tie: bool = True, causal: bool = True,
                 padding: bool = True, fixed_pad: bool = False, by_length: bool = False, first_layer: bool = False,
                 always_tie: bool = False, unit_init: bool = False, bias: bool = True, pass_dropout: bool = True,
                 ) -> None:
        super().__init__(src_vocab_size, tgt_vocab_size, d_model, num_heads, num_layers, d_ff,
                         dropout if pass_dropout else 0.0, (share_embeddings and tie) or always_tie,
                         causal=causal, pad_id=PAD_ID if fixed_pad else pad_id)
        self.scale, self.positions, self.padding, self.by_length = scale, positions, padding, by_length
        if first_layer:  # the stack keeps its layers (the weights fit) but runs the first one only
            self.encoder.forward = lambda x, mask=None: self.encoder.layers[0](x, mask)  # type: ignore[method-assign]
            self.decoder.forward = lambda y, memory, tgt_mask=None, src_mask=None: \
                self.decoder.layers[0](y, memory, tgt_mask, src_mask)  # type: ignore[method-assign]
        if not bias:
            self.output = torch.nn.Linear(d_model, tgt_vocab_size, bias=False)
            if share_embeddings and tie:
                self.output.weight = self.src_embedding.weight
        if unit_init:  # nn.Embedding's own N(0, 1), not re-initialised
            for embedding in {id(self.src_embedding): self.src_embedding,
                              id(self.tgt_embedding): self.tgt_embedding}.values():
                torch.nn.init.normal_(embedding.weight)

    def embed(self, embedding: torch.nn.Embedding, tokens: Tensor, start: int = 0) -> Tensor:
        x = embedding(tokens) * (self.d_model**0.5 if self.scale else 1.0)
        return self.positional(x, start) if self.positions else self.positional.dropout(x)

    def masks(self, src: Tensor, tgt: Tensor | None = None) -> tuple[Tensor | None, Tensor | None]:
        src_mask, tgt_mask = super().masks(src, tgt)
        if self.by_length:  # the first (number of real tokens) positions: right only for padding at the end
            real = (src != self.pad_id).sum(dim=1, keepdim=True)
            src_mask = (torch.arange(src.shape[1]) < real)[:, None, :]
        return (src_mask if self.padding else None), tgt_mask


def _variant(**switches: bool) -> type:
    def build(*args: object, **kwargs: object) -> Transformer:
        return _TransformerVariant(*args, **kwargs, **switches)  # type: ignore[arg-type]

    return build  # type: ignore[return-value]


TRANSFORMER_MISTAKES = [
    Mistake("the embeddings are not multiplied by √d_model before the positional code is added.",
            _variant(scale=False)),
    Mistake("the positions are missing: add the positional encoding to the scaled embeddings "
            "(self.positional), on the source and on the target side.", _variant(positions=False)),
    Mistake("weight tying is missing: with share_embeddings=True the target embedding and the output layer "
            "must be the source embedding's very Parameter, so the model has fewer parameters.", _variant(tie=False)),
    Mistake("you tied the weights although share_embeddings=False: then the target embedding and the output "
            "layer have parameters of their own.", _variant(always_tie=True)),
    Mistake("the decoder's causal mask is missing: each target position may attend only to itself and earlier "
            "positions, besides ignoring padding.", _variant(causal=False)),
    Mistake("the source padding mask is missing: every encoder layer and every decoder layer's cross-attention "
            "must ignore the source's padding.", _variant(padding=False)),
    Mistake("the padding is found with a fixed id: use the pad_id argument (self.pad_id), which need not be 0.",
            _variant(fixed_pad=True)),
    Mistake("padding can sit at the start of a row too: mask exactly the positions whose token is the pad id, "
            "not the last ones of the row.", _variant(by_length=True)),
    Mistake("only the first layer of a stack runs: pass the states through every layer of the encoder, then "
            "through every layer of the decoder.", _variant(first_layer=True)),
    Mistake("the embeddings keep nn.Embedding's initialisation N(0, 1): draw them with standard deviation "
            "1/√d_model (nn.init.normal_), so that × √d_model brings them to about 1.", _variant(unit_init=True)),
]

#: The statement's contract: what it allows, the cases that cover it, an answer wrong only there, the hint's words.
TRANSFORMER_CONTRACT = [
    Term("share_embeddings=False: separate embeddings and output layer", "share_embeddings=False",
         _variant(always_tie=True), "share_embeddings=False"),
    Term("share_embeddings=True: one Parameter in three places", "share_embeddings=True", _variant(tie=False),
         "weight tying"),
    Term("more than one layer per stack", "2 layers", _variant(first_layer=True), "every layer"),
    Term("source padding at the end of a row", "padding at the end", _variant(padding=False), "padding mask"),
    Term("source padding at the start of a row", "at the start", _variant(by_length=True), "start of a row"),
    Term("any pad_id (not only 0)", "pad_id=4", _variant(fixed_pad=True), "pad_id argument"),
    Term("target rows with later positions (the causal mask)", "padded target", _variant(causal=False),
         "causal mask"),
    Term("dropout 0 < p < 1, reaching every module in train()", "dropout 0.2", _variant(pass_dropout=False),
         "pass dropout on"),
    Term("the output layer with a bias, tied or not", "share_embeddings", _variant(bias=False), "has a bias"),
    Term("embeddings drawn with standard deviation 1/√d_model", "initial embeddings", _variant(unit_init=True),
         "1/√d_model"),
]


def _state_dict_fits(model: torch.nn.Module, reference: torch.nn.Module) -> None:
    """Load the reference's weights into `model`, or stop the case naming the keys that do not fit."""
    buffers = {name for name, _ in model.named_buffers()}  # a learner's table kept as a persistent buffer may stay
    keys = [k for k in model.state_dict() if k not in buffers]
    words = key_mismatch(keys, reference.state_dict())
    if words:
        missing = [k for k in reference.state_dict() if k not in keys]
        hint = ("the output layer has a bias (nn.Linear's default), tied or not: only its weight is shared."
                if missing == ["output.bias"] else
                "name the parts src_embedding, tgt_embedding, positional, encoder.layers, decoder.layers and "
                "output, as the exercise's text lists them.")
        raise Stop(Failure(Kind.WRONG_TYPE, f"your model's weights are not named like the reference's: {words}",
                           hint))
    model.load_state_dict(reference.state_dict(), strict=False)


def _embedding_init(model: torch.nn.Module, d_model: int) -> Tensor:
    """Per embedding table (one if tied): does it start with standard deviation 1/√d_model (within 30%)?"""
    tables = {id(p): p for name, p in model.named_parameters() if name.endswith("embedding.weight")}
    return torch.tensor([abs(float(p.detach().std()) * math.sqrt(d_model) - 1) < 0.3 for p in tables.values()])


def _source_and_target(g: torch.Generator, pad_id: int) -> tuple[Tensor, Tensor]:
    """src (3, 7): row 0 padded at the end, row 1 at the start; tgt (3, 6): BOS first, row 1 padded at the end.

    With pad_id ≠ 0 the real tokens include 0, so a fixed id 0 masks a real token and misses the padding.
    """
    real = torch.tensor([t for t in range(VOCAB_SIZE) if t not in (pad_id, BOS_ID)])
    src = real[torch.randint(len(real), (3, 7), generator=g)]
    tgt = real[torch.randint(len(real), (3, 6), generator=g)]
    if pad_id != PAD_ID:
        src[2, 3] = tgt[2, 2] = PAD_ID
    ends = torch.randint(1, 4, (3,), generator=g).tolist()
    src[0, 7 - ends[0]:], src[1, :ends[1]] = pad_id, pad_id
    tgt[1, 6 - ends[2]:] = pad_id
    tgt[:, 0] = BOS_ID
    return src, tgt


@functools.cache
def _reference_model(seed: int, share: bool, dropout: float, pad_id: int) -> Transformer:
    """The reference whose weights each case copies in (built once: a diagnosis runs every mistake's class)."""
    with seeded(seed):
        return Transformer(VOCAB_SIZE, VOCAB_SIZE, 16, 2, 2, 32, dropout, share_embeddings=share, pad_id=pad_id)


def _transformer_run(seed: int, share: bool, dropout: float, pad_id: int) -> Callable[[Callable[..., object]], object]:
    def run(cls: Callable[..., object]) -> object:
        args = (VOCAB_SIZE, VOCAB_SIZE, 16, 2, 2, 32, dropout)
        reference = _reference_model(seed, share, dropout, pad_id)
        with seeded(seed):
            model = cls(*args, share_embeddings=share, pad_id=pad_id)
        if not isinstance(model, torch.nn.Module):
            raise Stop(Failure(Kind.WRONG_TYPE, f"the class built a {type(model).__name__}, expected an nn.Module"))
        initial = _embedding_init(model, 16)  # before the reference's weights replace them
        _state_dict_fits(model, reference)
        count = torch.tensor(sum(p.numel() for p in model.parameters()))
        g = generator(seed + 1)
        src, tgt = _source_and_target(g, pad_id)
        real = tgt != pad_id  # logits at target padding are never used: only real positions are compared
        weights = torch.randn(int(real.sum()), VOCAB_SIZE, generator=g)
        model.eval()
        logits = model(src, tgt)
        if not isinstance(logits, Tensor) or logits.shape != (*tgt.shape, VOCAB_SIZE):
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise Stop(Failure(Kind.WRONG_SHAPE, f"forward returned {shape}, expected logits "
                               f"{(*tgt.shape, VOCAB_SIZE)}",
                               "forward(src, tgt) returns the output layer's logits (B, n_t, n_vocab)."))
        (logits[real] * weights).sum().backward()
        grads = torch.cat([(model.get_parameter(name).grad if model.get_parameter(name).grad is not None
                            else torch.zeros_like(model.get_parameter(name))).flatten()
                           for name, _ in reference.named_parameters(remove_duplicate=False)])
        with torch.no_grad():
            model.train()  # with dropout > 0, train() must change the output: dropout reached the modules
            differs = torch.tensor(not torch.allclose(model(src, tgt)[real], logits[real]))
        return count, logits[real].detach(), grads, differs, initial

    return run


def transformer_cases(seed: int) -> Iterator[Case]:
    """The generated cases of `check_Transformer`: tying off and on, pad ids 0 and 4, dropout in train()."""
    rows = "source padding at the end of row 0, at the start of row 1; padded target"
    yield Case(f"2 layers, d_model 16, share_embeddings=False, pad_id=0, {rows}; initial embeddings",
               run=_transformer_run(seed, share=False, dropout=0.0, pad_id=PAD_ID))
    yield Case(f"the same with share_embeddings=True and pad_id=4 (token 0 is a real token), {rows}",
               run=_transformer_run(seed + 1, share=True, dropout=0.0, pad_id=4),
               hint="the padding is the token given as the pad_id argument (self.pad_id), here 4, not a fixed 0: "
                    "here 0 is a real token.")
    yield Case("dropout 0.2, share_embeddings=True, pad_id=0: eval() output, and train() must differ from it",
               run=_transformer_run(seed + 2, share=True, dropout=0.2, pad_id=PAD_ID),
               hint="pass dropout on to the positional encoding and to every layer.")


@check(reference=Transformer, mistakes=TRANSFORMER_MISTAKES, contract=TRANSFORMER_CONTRACT,
       returns=("parameter count", "logits", "gradients", "dropout in train()", "initial embeddings"),
       compare_first=("parameter count",),
       passed="{cases} models (untied, tied, pad ids 0 and 4, padding at both ends, dropout): the reference's "
              "weights fit, logits, gradients and parameter counts equal, embeddings drawn at 1/√d_model.")
def check_Transformer() -> Iterator[Case]:  # noqa: N802  # named after the class, as every class exercise
    """Check the class `Transformer(src_vocab_size, tgt_vocab_size, d_model, num_heads, num_layers, d_ff, dropout,
    share_embeddings=False, pad_id=PAD)`: `forward(src (B, n_s), tgt (B, n_t)) -> logits (B, n_t, n_vocab)`."""
    yield from transformer_cases(120)


# ---- the label-smoothed loss --------------------------------------------------------------------------


def _loss_variant(logits: Tensor, targets: Tensor, smoothing: float, pad_id: int, *, smooth: bool = True,
                  ignore_pad: bool = True, others_only: bool = False, uniform_term: bool = True,
                  mean: bool = True, fixed_pad: bool = False, by_length: bool = False, per_row: bool = False,
                  fixed_smoothing: bool = False) -> Tensor:
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, targets[..., None])[..., 0]
    eps = 0.1 if fixed_smoothing else smoothing if smooth else 0.0
    if others_only:
        uniform = (-logp.sum(dim=-1) - nll) / (logp.shape[-1] - 1)  # the mean of -log p over the other tokens
        per_token = (1 - eps) * nll + eps * uniform
    else:
        per_token = (1 - eps) * nll + (eps * -logp.mean(dim=-1) if uniform_term else 0.0)
    pad = PAD_ID if fixed_pad else pad_id
    keep = targets != pad if ignore_pad else torch.ones_like(targets, dtype=torch.bool)
    if by_length:  # the first (number of real tokens) positions: right only for padding at the end
        keep = torch.arange(targets.shape[-1]) < keep.sum(dim=-1, keepdim=True)
    if per_row:
        return ((per_token * keep).sum(dim=-1) / keep.sum(dim=-1)).mean()
    total = (per_token * keep).sum()
    return total / keep.sum() if mean else total


def _loss(**switches: bool) -> Callable[..., Tensor]:
    return lambda logits, targets, smoothing, pad_id: _loss_variant(logits, targets, smoothing, pad_id, **switches)


LOSS_MISTAKES = [
    Mistake("no label smoothing: the target gives 1 − ε to the right token and spreads ε over the "
            "vocabulary.", _loss(smooth=False)),
    Mistake("the padding counts: positions whose target is the pad id must be left out of the loss and of the "
            "mean.", _loss(ignore_pad=False)),
    Mistake("ε is spread over the other n_vocab − 1 tokens only; torch (and the course) spread it over all "
            "n_vocab tokens, the right one included.", _loss(others_only=True)),
    Mistake("the uniform part is missing: besides (1 − ε) times the right token's loss, add ε times the "
            "mean of −log p over the vocabulary.", _loss(uniform_term=False)),
    Mistake("you summed over the tokens: take the mean over the real (non-padding) target tokens.",
            _loss(mean=False)),
    Mistake("the padding is found with a fixed id: use the pad_id argument, which need not be 0.",
            _loss(fixed_pad=True)),
    Mistake("padding can sit at the start of a row too: leave out exactly the positions whose target is the pad "
            "id, not the last ones of the row.", _loss(by_length=True)),
    Mistake("you averaged each row, then the rows: take one mean over every real target token of the batch "
            "(rows with more real tokens weigh more).", _loss(per_row=True)),
    Mistake("ε is fixed at 0.1: use the smoothing argument.", _loss(fixed_smoothing=True)),
]

LOSS_CONTRACT = [
    Term("any pad_id (not only 0)", "pad_id=3", _loss(fixed_pad=True), "pad_id argument"),
    Term("padding at the start of a row as well as at the end", "row 1 at the start", _loss(by_length=True),
         "start of a row"),
    Term("rows with different numbers of real tokens", "different numbers of real tokens", _loss(per_row=True),
         "every real target token"),
    Term("any smoothing 0 ≤ ε < 1", "smoothing=0.3", _loss(fixed_smoothing=True), "smoothing argument"),
    Term("padding anywhere is left out of the loss and of the mean", "padded", _loss(ignore_pad=False),
         "padding counts"),
]


def _reference_loss(logits: Tensor, targets: Tensor, smoothing: float, pad_id: int) -> Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=pad_id,
                           label_smoothing=smoothing)


def loss_cases(seed: int) -> Iterator[Case]:
    """The generated cases of `check_label_smoothed_loss`: sizes, ε, pad ids and padding drawn from `seed`."""
    g = generator(seed)
    for eps, pad_id, dtype in [(0.1, PAD_ID, torch.float32), (0.3, 3, torch.float64), (0.0, 5, torch.float32),
                               (0.25, PAD_ID, torch.float64)]:
        batch, n = int(torch.randint(3, 5, (), generator=g)), int(torch.randint(5, 8, (), generator=g))
        vocab = int(torch.randint(7, 11, (), generator=g))
        targets = torch.randint(vocab - 1, (batch, n), generator=g)
        targets[targets >= pad_id] += 1  # every id but pad_id, 0 included when pad_id ≠ 0
        ends = torch.randint(1, n - 1, (2,), generator=g).tolist()
        targets[0, n - ends[0]:], targets[1, :ends[1]] = pad_id, pad_id
        yield Case(f"B={batch}, n_t={n}, n_vocab={vocab}, smoothing={eps}, pad_id={pad_id}, {dtype}: padded "
                   "targets, row 0 at the end, row 1 at the start, different numbers of real tokens per row",
                   (3 * randn(g, batch, n, vocab, dtype=dtype), targets, eps, pad_id))


@check(reference=_reference_loss, mistakes=LOSS_MISTAKES, contract=LOSS_CONTRACT,
       passed="{cases} generated cases against F.cross_entropy(label_smoothing=ε, ignore_index=pad_id): pad ids "
              "0, 3 and 5, padding at both ends of a row, float64 included.")
def check_label_smoothed_loss() -> Iterator[Case]:
    """Check `label_smoothed_loss(logits (B, n_t, n_vocab), targets (B, n_t), smoothing, pad_id) -> scalar`."""
    yield from loss_cases(130)


# ---- the warm-up schedule -----------------------------------------------------------------------------


def _rates(rate: Callable[[int, int, int], object], d_model: int, warmup: int) -> Tensor:
    steps = [1, *range(2, 3 * warmup, max(1, warmup // 7)), warmup, warmup + 1, 10 * warmup]
    return torch.tensor([float(rate(s, d_model, warmup)) for s in steps], dtype=torch.float64)  # type: ignore[arg-type]


def _reference_rate(step: int, d_model: int, warmup: int) -> float:
    return warmup_schedule(d_model, warmup)(step - 1)  # the helper counts steps from 0


RATE_MISTAKES = [
    Mistake("the factor 1/√d_model is missing in front of the smaller of the two curves.",
            lambda s, d, w: min(s**-0.5, s * w**-1.5)),
    Mistake("max instead of min: the rate is the smaller of the rising and the falling curve.",
            lambda s, d, w: d**-0.5 * max(s**-0.5, s * w**-1.5)),
    Mistake("the rising part grows as step / warmup^1.5 (it meets 1/√step exactly at step = warmup).",
            lambda s, d, w: d**-0.5 * min(s**-0.5, s * w**-0.5)),
    Mistake("steps count from 1 here (the formula's step); do not add 1 to it.",
            lambda s, d, w: d**-0.5 * min((s + 1) ** -0.5, (s + 1) * w**-1.5)),
    Mistake("after the warm-up the rate falls as 1/√step: the rate is the smaller of the two curves, not the "
            "rising one alone.", lambda s, d, w: d**-0.5 * s * w**-1.5),
    Mistake("during the warm-up the rate rises in proportion to the step: the rate is the smaller of the two "
            "curves, not the falling one alone.", lambda s, d, w: d**-0.5 * s**-0.5),
    Mistake("d_model is fixed at 512: use the d_model argument.",
            lambda s, d, w: 512**-0.5 * min(s**-0.5, s * w**-1.5)),
    Mistake("the warm-up is fixed at 4000 steps: use the warmup_steps argument.",
            lambda s, d, w: d**-0.5 * min(s**-0.5, s * 4000**-1.5)),
]

RATE_CONTRACT = [
    Term("any d_model", "d_model=64", RATE_MISTAKES[6].wrong, "d_model argument"),
    Term("any warmup_steps", "warmup=", RATE_MISTAKES[7].wrong, "warmup_steps argument"),
    Term("step = 1, the first step (steps count from 1)", "from step 1", RATE_MISTAKES[3].wrong, "count from 1"),
    Term("steps during the warm-up", "during", RATE_MISTAKES[5].wrong, "rises in proportion"),
    Term("steps after the warm-up", "after the warm-up", RATE_MISTAKES[4].wrong, "falls as 1/√step"),
]


def rate_cases(seed: int) -> Iterator[Case]:
    """The paper's schedule first, then sizes and warm-ups drawn from `seed`."""
    g = generator(seed)
    drawn = [(int(2 ** torch.randint(4, 11, (), generator=g)), int(torch.randint(5, 3000, (), generator=g)))
             for _ in range(2)]
    for d_model, warmup in [(512, 4000), (64, 100), *drawn]:
        yield Case(f"d_model={d_model}, warmup={warmup}: from step 1, during and after the warm-up (to step "
                   f"{10 * warmup})", run=lambda f, d=d_model, w=warmup: _rates(f, d, w), what="the rates")


@check(reference=_reference_rate, mistakes=RATE_MISTAKES, contract=RATE_CONTRACT,
       passed="{cases} schedules (the paper's and generated ones), each from step 1 to 10·warmup: the paper's rate.")
def check_warmup_rate() -> Iterator[Case]:
    """Check `warmup_rate(step, d_model, warmup_steps) -> float` (step ≥ 1): the paper's learning rate."""
    yield from rate_cases(150)


# ---- one training step ---------------------------------------------------------------------------------


def _step_variant(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: object, src: Tensor,
                  tgt_in: Tensor, tgt_out: Tensor, *, zero: bool = True, order: str = "right",
                  schedule: bool = True, smoothing: float = 0.1, pad: int | None = PAD_ID,
                  always_schedule: bool = False, manual: bool = False) -> float:
    if zero and order != "zero_late":
        optimizer.zero_grad()
    logits = model(src, tgt_in)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), label_smoothing=smoothing,
                           ignore_index=-100 if pad is None else pad)
    if order == "step_first":
        optimizer.step()
        loss.backward()
    else:
        loss.backward()
        if order == "zero_late":
            optimizer.zero_grad()
        if manual:  # plain gradient descent by hand, whatever the optimizer
            with torch.no_grad():
                for p in model.parameters():
                    if p.grad is not None:
                        p -= optimizer.param_groups[0]["lr"] * p.grad
        else:
            optimizer.step()
    if always_schedule or (schedule and scheduler is not None):
        scheduler.step()  # type: ignore[union-attr]
    return loss.item()


def _step(**switches: object) -> Callable[..., float]:
    return lambda *args: _step_variant(*args, **switches)  # type: ignore[arg-type]


STEP_MISTAKES = [
    Mistake("the gradients are never zeroed: PyTorch adds each backward's gradients to the old ones, so "
            "clear them at the start of every step.", _step(zero=False)),
    # Zeroing after backward and stepping before it do the same here: the weights never move.
    Mistake("the weights never change: the optimizer stepped without gradients. The order is: clear the "
            "gradients, forward, loss, backward, then the optimizer's update.", _step(order="zero_late")),
    Mistake("the learning-rate scheduler never steps: after the optimizer's update, advance the scheduler "
            "(when there is one).", _step(schedule=False)),
    Mistake("the scheduler may be None (no schedule): advance it only when there is one.",
            _step(always_schedule=True), crashes=True),
    Mistake("you updated the weights by hand: let the optimizer make its own update, which knows its rule "
            "(SGD's momentum, Adam's moment estimates).", _step(manual=True)),
    Mistake("no label smoothing: use smoothing 0.1, as label_smoothed_loss does.", _step(smoothing=0.0)),
    Mistake("the padding counts in the loss: leave out the positions whose target is PAD.", _step(pad=None)),
]

STEP_CONTRACT = [
    Term("a scheduler, advanced after every update", "warm-up scheduler", _step(schedule=False),
         "scheduler never steps"),
    Term("scheduler=None", "scheduler=None", _step(always_schedule=True), "may be None"),
    Term("several steps in a row (gradients must not pile up)", "three steps", _step(zero=False), "never zeroed"),
    Term("padding in the targets, at the end or the start of a row", "padded targets", _step(pad=None),
         "padding counts"),
    Term("any optimizer (SGD with momentum, Adam): its own update rule", "SGD", _step(manual=True),
         "its own update"),
]


def _step_run(seed: int, with_scheduler: bool, adam: bool = False) -> Callable[[Callable[..., object]], object]:
    def run(step: Callable[..., object]) -> object:
        with seeded(seed):
            model = Transformer(VOCAB_SIZE, VOCAB_SIZE, 16, 2, 1, 32, 0.0, share_embeddings=True)
        # SGD mostly, not Adam: Adam turns float noise in a zero gradient (W_k's bias has one) into a full step;
        # the Adam case compares the losses and the rate only.
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2) if adam else \
            torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_schedule(16, 3, factor=0.5)) \
            if with_scheduler else None
        g = generator(seed + 1)
        losses = []
        for _ in range(3):
            src = torch.randint(3, VOCAB_SIZE, (4, 6), generator=g)
            tgt = torch.randint(3, VOCAB_SIZE, (4, 6), generator=g)
            ends = torch.randint(1, 3, (2,), generator=g).tolist()
            src[0, 6 - ends[0]:], tgt[1, 6 - ends[1]:], tgt[2, :ends[0]] = PAD_ID, PAD_ID, PAD_ID
            tgt_in, tgt_out = torch.cat([torch.full((4, 1), BOS_ID), tgt[:, :-1]], 1), tgt
            loss = step(model, optimizer, scheduler, src, tgt_in, tgt_out)
            losses.append(float(loss))  # type: ignore[arg-type]
        params = torch.cat([p.detach().flatten() for p in model.parameters()])
        return torch.tensor(losses), params if not adam else torch.zeros(1), \
            torch.tensor(optimizer.param_groups[0]["lr"])

    return run


@check(reference=train_step, mistakes=STEP_MISTAKES, contract=STEP_CONTRACT,
       returns=("losses", "parameters", "learning rate"), compare_first=("learning rate",),
       passed="{cases} runs of three steps on a small Transformer: the same losses and learning rate in each, "
              "the same weights after the two SGD runs.")
def check_train_step() -> Iterator[Case]:
    """Check `train_step(model, optimizer, scheduler, src, tgt_in, tgt_out) -> float`: one step of training."""
    yield Case("three steps of SGD with the warm-up scheduler, padded targets", run=_step_run(140, True))
    yield Case("three steps without a scheduler (scheduler=None), padded targets", run=_step_run(141, False))
    yield Case("three steps of Adam with the warm-up scheduler, padded targets", run=_step_run(142, True, adam=True))
