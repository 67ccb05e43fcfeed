"""Checks of notebook 11: correct variants pass, stubs are ⏳, each typical mistake gets its own hint."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers.checks import Status, check_causal_lm_loss, check_top_k_filter, check_top_p_filter
from helpers.checks.nb11_gpt import LOSS_MISTAKES, TOP_K_MISTAKES, TOP_P_MISTAKES
from helpers.gpt import causal_lm_loss
from helpers.sampling import top_k_filter, top_p_filter


def stub(*args, **kwargs):
    # YOUR CODE HERE
    raise NotImplementedError()


@pytest.mark.parametrize("check", [check_causal_lm_loss, check_top_k_filter, check_top_p_filter])
def test_stub_is_not_attempted(check):
    result = check(stub)
    assert result.status is Status.NOT_ATTEMPTED and not result.passed


@pytest.mark.parametrize("check", [check_causal_lm_loss, check_top_k_filter, check_top_p_filter])
def test_broken_candidates_fail_cleanly(check):
    assert check(lambda *args: 1 / 0).status is Status.FAILED
    assert check(lambda *args: "text").status is Status.FAILED
    assert "without calling it" in check(42).hint


# Every named mistake of the three checks, each failing with exactly its own hint.
MISTAKE_TABLES = [(check_causal_lm_loss, LOSS_MISTAKES), (check_top_k_filter, TOP_K_MISTAKES),
                  (check_top_p_filter, TOP_P_MISTAKES)]


@pytest.mark.parametrize(
    ("check", "mistake"),
    [(check, m) for check, table in MISTAKE_TABLES for m in table],
    ids=[f"{check.__name__}: {m.hint.split(':')[0][:40]}" for check, table in MISTAKE_TABLES for m in table],
)
def test_each_mistake_gets_its_own_hint(check, mistake):
    result = check(mistake.wrong)
    assert result.status is Status.FAILED
    assert result.hint == mistake.hint, result.message


# ---- causal_lm_loss ----------------------------------------------------------------------------------------


def loss_transposed(logits, tokens):
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:])  # classes in dim 1, as F expects


def loss_by_hand_in_float64(logits, tokens):
    log_p = torch.log_softmax(logits.double(), dim=-1)[:, :-1]
    return -log_p.gather(-1, tokens[:, 1:, None]).mean()


def loss_with_a_loop(logits, tokens):
    losses = [F.cross_entropy(logits[b, i], tokens[b, i + 1])
              for b in range(tokens.shape[0]) for i in range(tokens.shape[1] - 1)]
    return torch.stack(losses).mean()


def loss_as_a_sum_over_predictions(logits, tokens):
    predictions = tokens.shape[0] * (tokens.shape[1] - 1)
    log_p = torch.log_softmax(logits, dim=-1)
    return -torch.einsum("bnv,bnv->", log_p[:, :-1], F.one_hot(tokens[:, 1:], logits.shape[-1]).to(log_p)) / predictions


@pytest.mark.parametrize("candidate", [causal_lm_loss, loss_transposed, loss_by_hand_in_float64, loss_with_a_loop,
                                       loss_as_a_sum_over_predictions])
def test_loss_correct_variants_pass(candidate):
    result = check_causal_lm_loss(candidate)
    assert result.passed, result.message


def test_loss_calling_an_earlier_stub_names_it():
    def shift(logits, tokens):
        # YOUR CODE HERE
        raise NotImplementedError()

    def loss_through_a_stub(logits, tokens):
        inputs, targets = shift(logits, tokens)
        return F.cross_entropy(inputs, targets)

    result = check_causal_lm_loss(loss_through_a_stub)
    assert result.status is Status.FAILED and "`shift`" in result.summary and "still the stub" in result.summary, \
        result.message


def test_loss_hints_name_the_mistakes():
    unshifted = check_causal_lm_loss(lambda logits, tokens: F.cross_entropy(logits.flatten(0, 1), tokens.flatten()))
    assert "not shifted" in unshifted.hint
    softmaxed = check_causal_lm_loss(lambda logits, tokens: causal_lm_loss(logits.softmax(-1), tokens))
    assert "softmax and logits confused" in softmaxed.hint


# ---- top_k_filter -----------------------------------------------------------------------------------------


def top_k_by_threshold(logits, k):
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return torch.where(logits >= kth, logits, torch.full_like(logits, float("-inf")))


def top_k_by_sorting(logits, k):
    kth = logits.sort(dim=-1, descending=True).values[..., k - 1 : k]
    return torch.where(logits >= kth, logits, float("-inf"))


def top_k_by_kthvalue_in_float64(logits, k):
    kth = logits.double().kthvalue(logits.shape[-1] - k + 1, dim=-1, keepdim=True).values  # k-th largest
    return logits.double().masked_fill(logits < kth, float("-inf"))


def top_k_with_a_loop(logits, k):
    out = logits.clone()
    for row in out.view(-1, out.shape[-1]):
        kth = sorted(row.tolist(), reverse=True)[k - 1]
        for i, value in enumerate(row.tolist()):
            if value < kth:
                row[i] = float("-inf")
    return out


def top_k_as_transformers(logits, k):
    from transformers.generation.logits_process import TopKLogitsWarper

    return TopKLogitsWarper(k)(None, logits)


@pytest.mark.parametrize("candidate", [top_k_filter, top_k_by_threshold, top_k_by_sorting,
                                       top_k_by_kthvalue_in_float64, top_k_with_a_loop, top_k_as_transformers])
def test_top_k_correct_variants_pass(candidate):
    result = check_top_k_filter(candidate)
    assert result.passed, result.message


def test_top_k_keeping_k_plus_one_is_named():
    def off_by_one(logits, k):
        kth = logits.topk(k + 1, dim=-1).values[..., -1:]  # the (k+1)-th value: one too many survive
        return logits.masked_fill(logits < kth, float("-inf"))

    result = check_top_k_filter(off_by_one)
    assert result.status is Status.FAILED and "k + 1" in result.hint, result.message


def test_top_k_keeping_exactly_k_on_a_tie_is_named():
    def exactly_k_by_ranks(logits, k):  # ranks break ties by position: one of the tied logits is dropped
        ranks = logits.argsort(dim=-1, descending=True, stable=True).argsort(dim=-1)
        return logits.masked_fill(ranks >= k, float("-inf"))

    result = check_top_k_filter(exactly_k_by_ranks)
    assert result.status is Status.FAILED and "a tie at the k-th" in result.summary, result.message
    assert "tie" in result.hint and "k-th largest" in result.hint, result.message


def test_top_k_must_not_modify_its_input():
    def in_place(logits, k):
        logits[logits < logits.topk(k, dim=-1).values[..., -1:]] = float("-inf")
        return logits

    assert "in place" in check_top_k_filter(in_place).summary


# ---- top_p_filter -----------------------------------------------------------------------------------------


def top_p_with_a_loop(logits, p):
    out = logits.clone()
    if p >= 1:
        return out
    rows = out.view(-1, out.shape[-1])
    for row in rows:
        probs = row.softmax(-1)
        mass = 0.0
        for index in probs.argsort(descending=True).tolist():
            if mass >= p:
                row[index] = float("-inf")
            mass += probs[index].item()
    return out


def top_p_shifted_mask(logits, p):
    if p == 1:
        return logits.clone()
    probs, order = logits.softmax(-1).sort(dim=-1, descending=True)
    remove = probs.cumsum(-1) >= p
    remove[..., 1:] = remove[..., :-1].clone()  # shift right: the token that crosses p stays
    remove[..., 0] = False
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


def top_p_as_transformers(logits, p):
    from transformers.generation.logits_process import TopPLogitsWarper

    rows = logits.reshape(-1, logits.shape[-1])  # the warper works on (batch, n_vocab) scores
    return TopPLogitsWarper(p)(None, rows).reshape(logits.shape)


def top_p_in_float64_with_searchsorted(logits, p):
    if p >= 1.0:
        return logits + 0.0
    probs, order = logits.double().softmax(-1).sort(dim=-1, descending=True)
    cumulative = probs.cumsum(-1)
    size = torch.searchsorted(cumulative, torch.full((*cumulative.shape[:-1], 1), p, dtype=torch.float64)) + 1
    keep_sorted = torch.arange(logits.shape[-1]) < size
    return logits.masked_fill(~keep_sorted.scatter(-1, order, keep_sorted), float("-inf"))


@pytest.mark.parametrize("candidate", [top_p_filter, top_p_with_a_loop, top_p_shifted_mask, top_p_as_transformers,
                                       top_p_in_float64_with_searchsorted])
def test_top_p_correct_variants_pass(candidate):
    result = check_top_p_filter(candidate)
    assert result.passed, result.message


def test_top_p_losing_the_most_likely_token_is_named():
    def shifted_without_reset(logits, p):
        probs, order = logits.softmax(-1).sort(dim=-1, descending=True)
        remove = probs.cumsum(-1) > p
        remove[..., 1:] = remove[..., :-1].clone()  # forgot remove[..., 0] = False
        return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))

    result = check_top_p_filter(shifted_without_reset)
    assert result.status is Status.FAILED and "most likely token is always kept" in result.hint, result.message


def test_top_p_of_1_by_running_sums_is_named():
    def no_p_1_rule(logits, p):
        probs, order = logits.softmax(-1).sort(dim=-1, descending=True)
        keep = probs.cumsum(-1) - probs < p
        return logits.masked_fill(~keep.scatter(-1, order, keep), float("-inf"))

    result = check_top_p_filter(no_p_1_rule)
    assert result.status is Status.FAILED and "p = 1 keeps every token" in result.hint, result.message


def test_top_p_dropping_the_crossing_token_is_named():
    def drops_it(logits, p):
        probs, order = logits.softmax(-1).sort(dim=-1, descending=True)
        keep = probs.cumsum(-1) < p
        keep[..., 0] = True
        return logits.masked_fill(~keep.scatter(-1, order, keep), float("-inf"))

    result = check_top_p_filter(drops_it)
    assert result.status is Status.FAILED and "crosses p" in result.hint, result.message
