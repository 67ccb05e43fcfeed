"""Check for notebook 09: greedy decoding with a trained-or-not Transformer."""

from __future__ import annotations

import torch
from torch import Tensor

from helpers.checks.core import CheckResult, Failure, Probe, run_check
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
        if argmax_dim == -1:
            next_token = logits[:, position].argmax(dim=-1)
        else:
            next_token = logits.argmax(dim=1)[:, 0]
        out = torch.cat([out, next_token.unsqueeze(1)], dim=1)
    return out if with_bos else out[:, 1:]


def check_greedy_decode(candidate: object) -> CheckResult:
    """Check `greedy_decode(model, src, bos_id, eos_id, max_len) -> (B, n)` token ids starting with BOS."""

    def body(probe: Probe) -> str:
        for seed, (batch, n_src, max_len) in enumerate([(3, 6, 7), (2, 9, 5)]):
            state = torch.random.get_rng_state()
            torch.manual_seed(100 + seed)
            model = Transformer(12, 12, d_model=16, num_heads=2, num_layers=1, d_ff=32, dropout=0.0).eval()
            with torch.no_grad():
                # Sharpen a random model so that each next token depends on what came before.
                model.output.weight.mul_(6.0)
                model.output.bias[EOS_ID] = -3.0  # it rarely stops: the whole loop gets exercised
                model.output.bias[[PAD_ID, BOS_ID]] = -100.0  # and never predicts PAD or BOS
            torch.random.set_rng_state(state)
            g = torch.Generator().manual_seed(110 + seed)
            src = torch.randint(3, 12, (batch, n_src), generator=g)
            src[0, -2:] = PAD_ID
            expected = model.greedy_decode(src, BOS_ID, EOS_ID, max_len)
            result = probe.call(model, src, BOS_ID, EOS_ID, max_len)
            case = f"a random model, {batch} source sentences of {n_src} tokens, max_len={max_len}"
            if not isinstance(result, Tensor):
                raise Failure(f"On {case}: your function returned a {type(result).__name__}, expected a tensor "
                              "of token ids (B, n).", "return the tensor of generated token ids, BOS first.")
            if result.ndim != 2 or result.shape[0] != batch:
                raise Failure(f"On {case}: the output has shape {tuple(result.shape)}, expected ({batch}, n).",
                              "one row of token ids per source sentence.")
            got, want = _sequences(result), _sequences(expected)
            if got == want:
                probe.cases += 1
                continue
            mistakes = [
                ("every step used only the prediction made right after BOS: feed all tokens generated so far "
                 "(BOS + previous tokens) and take the prediction at the last position, logits[:, -1].",
                 dict(position=0)),
                ("argmax over the wrong dimension: pick the most likely token over the vocabulary (dim=-1) "
                 "at the last position.", dict(argmax_dim=1)),
                ("the output should start with the BOS token, as the decoder's input does.", dict(with_bos=False)),
            ]
            hint = ""
            for text, switches in mistakes:
                if _sequences(_greedy_variant(model, src, max_len, **switches)) == got:
                    hint = text
                    break
            first = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
            raise Failure(f"On {case}: sentence {first} decodes to {got[first]}, expected {want[first]}.", hint)
        return f"{probe.cases} batches of a random model, with source padding: the same tokens as the reference."

    return run_check("greedy_decode", candidate, body)
