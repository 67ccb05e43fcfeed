"""Check of notebook 09's exercise: greedy decoding. Correct variants pass; each entry of the contract (two layers,
padding at both ends, EOS at different steps or never, other BOS ids) fails an answer wrong only there."""

from __future__ import annotations

import pytest
import torch

from helpers.checks import Status
from helpers.checks.nb09_transformer import MISTAKES, _greedy, check_greedy_decode, greedy_cases


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


def stops_when_all_ended(model, src, bos_id, eos_id, max_len):
    src_mask, _ = model.masks(src)
    memory = model.encode(src, src_mask)
    out = torch.full((src.shape[0], 1), bos_id)
    while out.shape[1] <= max_len and not (out == eos_id).any(dim=1).all():
        _, tgt_mask = model.masks(src, out)
        logits = model.decode(out, memory, tgt_mask, src_mask).double()  # float64 scores: the same argmax
        out = torch.cat([out, torch.einsum("bv->bv", logits[:, -1]).argmax(-1, keepdim=True)], dim=1)
    return out


@pytest.mark.parametrize(
    "candidate", [loop_to_max_len, one_sentence_at_a_time, stops_when_all_ended,
                  lambda m, s, b, e, n: m.greedy_decode(s, b, e, n), _greedy()]
)
def test_correct_variants_pass(candidate):
    result = check_greedy_decode(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.hint[:30])
def test_each_mistake_gets_its_own_hint(mistake):
    result = check_greedy_decode(mistake.wrong)
    assert result.status is Status.FAILED and result.hint == mistake.hint, result.message


def test_the_cases_hold_what_their_names_say():
    cases = list(greedy_cases(100))
    assert len(cases) == 3 and all("2 layers" in c.name for c in cases)
    for case in cases:
        model, src, bos_id, eos_id, max_len = _unpack(case)
        assert len(model.decoder.layers) == 2
        assert (src[0, -1] == 0).item() and (src[1, 0] == 0).item()  # padding at the end, at the start
        ends = [row.index(eos_id) if eos_id in row else None
                for row in model.greedy_decode(src, bos_id, eos_id, max_len).tolist()]
        if "no sentence reaches EOS" in case.name:
            assert ends == [None] * len(ends)
        else:
            assert None in ends and len({e for e in ends if e is not None}) >= 2


def _unpack(case):
    """The model, source and ids a case decodes with, read from its run's closure."""
    cells = dict(zip(case.run.__code__.co_freevars, (c.cell_contents for c in case.run.__closure__)))
    return cells["model"], cells["src"], cells["bos_id"], cells["eos_id"], cells["max_len"]


def test_stub_and_broken_candidates():
    def stub(model, src, bos_id, eos_id, max_len):
        raise NotImplementedError()

    assert check_greedy_decode(stub).status is Status.NOT_ATTEMPTED
    assert "expected a tensor" in check_greedy_decode(lambda *a: [1, 2]).message
    assert "expected (3, n)" in check_greedy_decode(lambda m, s, *a: torch.zeros(5, dtype=torch.long)).message
