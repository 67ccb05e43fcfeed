"""Checks of notebook 11 (a GPT from scratch): the causal LM loss, and top-k / top-p filtering.

Each mistake below is a wrong implementation with the exercise's signature; the core runs it on
the failing case and names it when the candidate gives the same answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.checks.core import Case, Mistake, check, generator, randn
from helpers.gpt import causal_lm_loss
from helpers.sampling import top_k_filter, top_p_filter

NEG_INF = float("-inf")

# ---- the causal language-model loss ----------------------------------------------------------------------


def _ce(logits: Tensor, targets: Tensor, **kwargs: object) -> Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), **kwargs)


LOSS_MISTAKES = [
    Mistake("the targets are not shifted: position i must predict token i + 1, so pair the logits of "
            "positions 0 … n − 2 with the tokens of positions 1 … n − 1. Unshifted, the model is asked to copy the "
            "token it already sees.",
            lambda logits, tokens: _ce(logits, tokens)),
    Mistake("the shift goes the wrong way: the logits at position i predict the NEXT token, so drop the LAST logits "
            "and the FIRST tokens.",
            lambda logits, tokens: _ce(logits[:, 1:], tokens[:, :-1])),
    Mistake("the targets wrap around: rolling the tokens makes the last position predict the first token, which it "
            "cannot know. Drop the last position instead of rolling.",
            lambda logits, tokens: _ce(logits, tokens.roll(-1, dims=1))),
    Mistake("softmax and logits confused: cross_entropy takes raw logits and applies log_softmax itself; giving it "
            "probabilities applies softmax twice.",
            lambda logits, tokens: _ce(logits[:, :-1].softmax(-1), tokens[:, 1:])),
    Mistake("nll_loss expects log-probabilities: apply log_softmax to the logits first, or use cross_entropy, "
            "which does both.",
            lambda logits, tokens: F.nll_loss(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                              tokens[:, 1:].reshape(-1))),
    Mistake("you summed the losses: take the mean over every predicted position (cross_entropy's default "
            "reduction).", lambda logits, tokens: _ce(logits[:, :-1], tokens[:, 1:], reduction="sum")),
    Mistake("the loss is the negative log-probability of the targets: you forgot the minus sign.",
            lambda logits, tokens: -_ce(logits[:, :-1], tokens[:, 1:])),
]


@check(reference=causal_lm_loss, mistakes=LOSS_MISTAKES, what="the loss",
       passed="{cases} cases: batches, float64 and the shortest sequence, a mean over shifted targets.")
def check_causal_lm_loss() -> Iterator[Case]:
    """Check `causal_lm_loss(logits (B, n, V), tokens (B, n)) -> scalar`: the mean next-token cross-entropy."""
    for seed, (name, batch, n, vocab, dtype) in enumerate([
        ("a batch of 2 sequences of 6 tokens, a vocabulary of 7", 2, 6, 7, torch.float32),
        ("3 sequences of 4 tokens, a vocabulary of 5, float64", 3, 4, 5, torch.float64),
        ("one sequence of 2 tokens (a single prediction), a vocabulary of 4", 1, 2, 4, torch.float32),
    ]):
        g = generator(1100 + seed)
        logits = randn(g, batch, n, vocab, dtype=dtype) * 2
        yield Case(name, (logits, torch.randint(0, vocab, (batch, n), generator=g)), tolerance=(1e-5, 1e-6))


# ---- top-k and top-p filtering ---------------------------------------------------------------------------

#: The filtered logits are the input's own numbers or -inf: compared (almost) exactly.
FILTERED = (0.0, 1e-6)


def _keep(logits: Tensor, keep: Tensor) -> Tensor:
    return logits.masked_fill(~keep, NEG_INF)


def _top_k_smallest(logits: Tensor, k: int) -> Tensor:
    index = logits.topk(k, dim=-1, largest=False).indices
    return _keep(logits, torch.zeros_like(logits, dtype=torch.bool).scatter(-1, index, True))


def _filter_mistakes(right: Callable[[Tensor, float], Tensor]) -> list[Mistake]:
    """The two mistakes top-k and top-p share: 0 instead of -inf, and probabilities instead of logits."""
    return [
        Mistake("the dropped tokens must get -inf, not 0: softmax gives a logit of 0 a probability of its own.",
                lambda logits, a: right(logits, a).nan_to_num(neginf=0.0)),
        Mistake("return filtered LOGITS (the kept ones unchanged, the others -inf), not probabilities: the sampler "
                "applies softmax afterwards.", lambda logits, a: right(logits, a).softmax(-1)),
    ]


TOP_K_MISTAKES = [
    Mistake("you kept k + 1 tokens: keep the logits at least as large as the k-th largest one (the smallest of "
            "topk's k values), not those at least as large as the (k+1)-th.",
            lambda logits, k: top_k_filter(logits, min(k + 1, logits.shape[-1]))),
    Mistake("you kept k - 1 tokens: a strict comparison with the k-th largest value drops the k-th token itself.",
            lambda logits, k: top_k_filter(logits, k - 1) if k > 1 else logits.new_full(logits.shape, NEG_INF)),
    Mistake("you kept the k SMALLEST logits: topk returns the largest by default (largest=True).", _top_k_smallest),
    *_filter_mistakes(top_k_filter),
    Mistake("top-k works on each row's own scores: take topk along the vocabulary (dim=-1), not across the batch.",
            lambda logits, k: top_k_filter(logits.transpose(0, -1), k).transpose(0, -1)),
]


def _filter_cases(seed: int, settings: tuple[tuple[float, ...], ...], name: str) -> Iterator[Case]:
    """Three logits tensors, each with its settings of k (or p): `name` is "k" or "p"."""
    g = generator(seed)
    inputs = [
        ("4 rows of 10 logits", randn(g, 4, 10) * 2),
        ("a (2, 3) batch of rows of 8 logits, float64", randn(g, 2, 3, 8, dtype=torch.float64) * 3),
        ("one row of 6 logits", randn(g, 1, 6)),
    ]
    for (what, logits), values in zip(inputs, settings):
        for value in values:
            yield Case(f"{what} with {name} = {value}", (logits, value), tolerance=FILTERED)


@check(reference=top_k_filter, mistakes=TOP_K_MISTAKES, what="the filtered logits",
       passed="{cases} cases: k = 1, k = V and k in between, batched rows and float64.")
def check_top_k_filter() -> Iterator[Case]:
    """Check `top_k_filter(logits (..., V), k) -> (..., V)`: the k largest logits kept, the others -inf."""
    yield from _filter_cases(1110, ((1, 3, 10), (2, 5), (4,)), "k")


def _nucleus(logits: Tensor, p: float, *, rule: str = "before", descending: bool = True,
             unsort: bool = True, on_logits: bool = False) -> Tensor:
    """Top-p with switches that reproduce the typical mistakes."""
    scores = logits if on_logits else logits.softmax(-1)
    sorted_scores, order = scores.sort(dim=-1, descending=descending)
    cumulative = sorted_scores.cumsum(dim=-1)
    # "strict" (cumsum < p) also stands for cumsum <= p: the running sum never equals p exactly on real logits.
    keep_sorted = cumulative - sorted_scores < p if rule == "before" else cumulative < p
    if rule != "before":
        keep_sorted[..., 0] = True  # such code usually still keeps the most likely token
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted) if unsort else keep_sorted
    return _keep(logits, keep)


TOP_P_MISTAKES = [
    Mistake("you dropped the token that crosses p: the nucleus is the smallest set with mass >= p, so it must "
            "include the token whose running sum first reaches p. Keep a token when the mass of the tokens BEFORE "
            "it is < p (cumsum - probs < p), not when its own running sum is.",
            lambda logits, p: _nucleus(logits, p, rule="strict")),
    Mistake("sort the probabilities in DEcreasing order (descending=True): the nucleus is made of the most likely "
            "tokens.", lambda logits, p: _nucleus(logits, p, descending=False)),
    Mistake("the mask you built is in sorted order: scatter it back to the tokens' own positions with the sort's "
            "indices before applying it.", lambda logits, p: _nucleus(logits, p, unsort=False)),
    Mistake("p is a probability mass: add up softmax(logits), not the logits themselves.",
            lambda logits, p: _nucleus(logits, p, on_logits=True)),
    *_filter_mistakes(top_p_filter),
]


@check(reference=top_p_filter, mistakes=TOP_P_MISTAKES, what="the filtered logits",
       passed="{cases} cases: p from 0.05 (only the most likely token) to 1 (every token), batched and float64.")
def check_top_p_filter() -> Iterator[Case]:
    """Check `top_p_filter(logits (..., V), p) -> (..., V)`: the smallest set of most likely tokens with mass >= p."""
    yield from _filter_cases(1120, ((0.5, 0.9, 1.0), (0.3, 0.8), (0.05,)), "p")
