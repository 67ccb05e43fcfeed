"""Check of notebook 09's exercise: greedy decoding."""

from __future__ import annotations

import pytest
import torch

from helpers.checks import Status
from helpers.checks.nb09_transformer import _greedy_variant, check_greedy_decode


def loop_to_max_len(model, src, bos_id, eos_id, max_len):
    src_mask, _ = model.masks(src)
    memory = model.encode(src, src_mask)
    out = torch.full((src.shape[0], 1), bos_id)
    for _ in range(max_len):
        _, tgt_mask = model.masks(src, out)
        next_token = model.decode(out, memory, tgt_mask, src_mask)[:, -1].argmax(dim=-1)
        out = torch.cat([out, next_token[:, None]], dim=1)
    return out


def one_sentence_at_a_time(model, src, bos_id, eos_id, max_len):
    rows = []
    for sentence in src:
        tokens = [bos_id]
        for _ in range(max_len):
            logits = model(sentence[None], torch.tensor([tokens]))
            tokens.append(int(logits[0, -1].argmax()))
            if tokens[-1] == eos_id:
                break
        rows.append(torch.tensor(tokens + [0] * (max_len + 1 - len(tokens))))
    return torch.stack(rows)


@pytest.mark.parametrize(
    "candidate", [loop_to_max_len, one_sentence_at_a_time, lambda m, s, b, e, n: m.greedy_decode(s, b, e, n)]
)
def test_correct_variants_pass(candidate):
    result = check_greedy_decode(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize(
    ("switches", "words"),
    [(dict(position=0), "logits[:, -1]"), (dict(argmax_dim=1), "wrong dimension"), (dict(with_bos=False), "BOS")],
)
def test_typical_mistakes_are_named(switches, words):
    result = check_greedy_decode(lambda m, s, b, e, n: _greedy_variant(m, s, n, **switches))
    assert result.status is Status.FAILED and words in result.hint, result.message


def test_stub_and_broken_candidates():
    def stub(model, src, bos_id, eos_id, max_len):
        raise NotImplementedError()

    assert check_greedy_decode(stub).status is Status.NOT_ATTEMPTED
    assert "expected a tensor" in check_greedy_decode(lambda *a: [1, 2]).message
    assert "expected (3, n)" in check_greedy_decode(lambda m, s, *a: torch.zeros(5, dtype=torch.long)).message
