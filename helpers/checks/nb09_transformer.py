"""Check of notebook 09's exercise: greedy decoding with a trained-or-not Transformer."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from helpers.checks.core import Case, Failure, Kind, Mistake, check, generator, seeded
from helpers.transformer import Transformer

BOS_ID, EOS_ID, PAD_ID = 1, 2, 0


def _sequences(tokens: Tensor) -> list[list[int]]:
    """Each row up to and including its first EOS, without trailing padding."""
    rows = []
    for row in tokens.tolist():
        out = []
        for token in row:
            out.append(token)
            if token == EOS_ID:
                break
        while out and out[-1] == PAD_ID:
            out.pop()
        rows.append(out)
    return rows


def _compare_decoded(actual: object, expected: object, what: str, tolerance: tuple[float, float]) -> Failure | None:
    """Token ids compare as sentences: what follows a sentence's EOS does not count."""
    assert isinstance(expected, Tensor)
    if not isinstance(actual, Tensor):
        return Failure(Kind.WRONG_TYPE, f"your function returned a {type(actual).__name__}, expected a tensor of "
                       "token ids (B, n)")
    if actual.ndim != 2 or actual.shape[0] != expected.shape[0]:
        return Failure(Kind.WRONG_SHAPE, f"the output has shape {tuple(actual.shape)}, "
                       f"expected ({expected.shape[0]}, n)")
    got, want = _sequences(actual), _sequences(expected)
    wrong = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
    return None if wrong is None else Failure(Kind.WRONG_VALUES, f"sentence {wrong} decodes to {got[wrong]}, "
                                              f"expected {want[wrong]}")


@torch.no_grad()
def _greedy_variant(model: Transformer, src: Tensor, max_len: int, *, position: int = -1, argmax_dim: int = -1,
                    feed_back: bool = True, with_bos: bool = True) -> Tensor:
    """Greedy decoding with switches that reproduce the typical mistakes."""
    src_mask, _ = model.masks(src)
    memory = model.encode(src, src_mask)
    out = torch.full((src.shape[0], 1), BOS_ID, dtype=torch.long)
    for _ in range(max_len):
        _, tgt_mask = model.masks(src, out)
        logits = model.decode(out, memory, tgt_mask, src_mask)
        next_token = logits[:, position].argmax(dim=-1) if argmax_dim == -1 else logits.argmax(dim=1)[:, 0]
        out = torch.cat([out, next_token.unsqueeze(1)], dim=1)
    return out if with_bos else out[:, 1:]


def _mistake(hint: str, **switches: object) -> Mistake:
    return Mistake(hint, lambda model, src, bos, eos, max_len: _greedy_variant(model, src, max_len, **switches))


MISTAKES = [
    _mistake("every step used only the prediction made right after BOS: feed all tokens generated so far "
             "(BOS + previous tokens) and take the prediction at the last position, logits[:, -1].", position=0),
    _mistake("argmax over the wrong dimension: pick the most likely token over the vocabulary (dim=-1) "
             "at the last position.", argmax_dim=1),
    _mistake("the output should start with the BOS token, as the decoder's input does.", with_bos=False),
]


@check(reference=lambda model, src, bos, eos, max_len: model.greedy_decode(src, bos, eos, max_len),
       mistakes=MISTAKES, compare=_compare_decoded,
       hints={Kind.WRONG_TYPE: "return the tensor of generated token ids, BOS first.",
              Kind.WRONG_SHAPE: "one row of token ids per source sentence."},
       passed="{cases} batches of a random model, with source padding: the same tokens as the reference.")
def check_greedy_decode() -> Iterator[Case]:
    """Check `greedy_decode(model, src, bos_id, eos_id, max_len) -> (B, n)` token ids starting with BOS."""
    for seed, (batch, n_src, max_len) in enumerate([(3, 6, 7), (2, 9, 5)]):
        with seeded(100 + seed), torch.no_grad():
            model = Transformer(12, 12, d_model=16, num_heads=2, num_layers=1, d_ff=32, dropout=0.0).eval()
            # Sharpen a random model so that each next token depends on what came before.
            model.output.weight.mul_(6.0)
            model.output.bias[EOS_ID] = -3.0  # it rarely stops: the whole loop gets exercised
            model.output.bias[[PAD_ID, BOS_ID]] = -100.0  # and never predicts PAD or BOS
        src = torch.randint(3, 12, (batch, n_src), generator=generator(110 + seed))
        src[0, -2:] = PAD_ID
        yield Case(f"a random model, {batch} source sentences of {n_src} tokens, max_len={max_len}",
                   (model, src, BOS_ID, EOS_ID, max_len))
