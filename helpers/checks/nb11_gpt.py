"""Checks of notebook 11 (a GPT from scratch): the causal LM loss, and top-k / top-p filtering.

Each mistake below is a wrong implementation with the exercise's signature; the core runs it on
the failing case and names it when the candidate gives the same answer. Each check's contract
(`Term`s) lists what its statement allows, and the generated cases cover every entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.checks.core import Case, Mistake, Term, check, generator, randn
from helpers.gpt import causal_lm_loss
from helpers.sampling import top_k_filter, top_p_filter

NEG_INF = float("-inf")

#: The telling pieces of each exercise's solution: no Hint 1, Hint 2 or ❌ hint may contain one.
SOLUTION_FRAGMENTS: dict[str, list[str]] = {
    "causal_lm_loss": ["logits[:, :-1]", "tokens[:, 1:]", "[:, :-1].reshape", "[:, 1:].reshape"],
    "top_k_filter": ["topk(k, dim=-1)", ".values[..., -1:]", "logits < kth", "masked_fill(logits <"],
    "top_p_filter": ["descending=True)", "cumsum(dim=-1) - sorted_probs", "- sorted_probs < p",
                     "scatter(-1, order, keep_sorted)", "masked_fill(~keep"],
}

# ---- the causal language-model loss ----------------------------------------------------------------------


def _ce(logits: Tensor, targets: Tensor, **kwargs: object) -> Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), **kwargs)


def _loss_of_first_row(logits: Tensor, tokens: Tensor) -> Tensor:
    return causal_lm_loss(logits[:1], tokens[:1])


def _loss_over_all_tokens(logits: Tensor, tokens: Tensor) -> Tensor:
    return _ce(logits[:, :-1], tokens[:, 1:], reduction="sum") / tokens.numel()


def _loss_vocabulary_from_dim_1(logits: Tensor, tokens: Tensor) -> Tensor:
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[1]), tokens[:, 1:].reshape(-1))


def _loss_ignoring_id_0(logits: Tensor, tokens: Tensor) -> Tensor:
    return _ce(logits[:, :-1], tokens[:, 1:], ignore_index=0)


FIRST_ROW_ONLY = "you used only the first row of the batch: the loss is the mean over every row and every position."
OVER_ALL_TOKENS = ("you divided by B · n, the number of tokens: a row of n tokens gives n − 1 predictions, so the "
                   "mean is over B · (n − 1) of them.")
VOCAB_DIM = ("the vocabulary is the last dimension of the logits, n_vocab, whatever the row length n: take its size "
             "from there, not from dimension 1.")
ID_0 = ("every id is a real token here, 0 included: there is no padding in these rows, so no target may be "
        "ignored (no ignore_index).")

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
    Mistake(FIRST_ROW_ONLY, _loss_of_first_row),
    Mistake(OVER_ALL_TOKENS, _loss_over_all_tokens),
    Mistake(VOCAB_DIM, _loss_vocabulary_from_dim_1, crashes=True),
    Mistake(ID_0, _loss_ignoring_id_0),
]

LOSS_CONTRACT = [
    Term("a batch of several rows (B > 1), one row (B = 1)", "rows of", _loss_of_first_row, "every row"),
    Term("rows of any length n ≥ 2: n − 1 predictions each, the mean over B · (n − 1)", "predictions each",
         _loss_over_all_tokens, "n − 1 predictions"),
    Term("any n_vocab, independent of n (logits (B, n, n_vocab))", "n_vocab =", _loss_vocabulary_from_dim_1,
         "last dimension"),
    Term("any id in 0 … n_vocab − 1 as a target, 0 included (no padding)", "id 0 among the targets",
         _loss_ignoring_id_0, "0 included"),
]


def _loss_cases(seed: int) -> Iterator[Case]:
    """Rows of random shapes (n_vocab never equal to n), ids drawn from the whole vocabulary, 0 always a target."""
    g = generator(seed)
    for index in range(5):
        batch = 1 if index == 3 else int(torch.randint(2, 5, (), generator=g))
        n = 2 if index == 3 else int(torch.randint(3, 10, (), generator=g))
        vocab = int(torch.randint(3, 13, (), generator=g))
        vocab += vocab == n  # n_vocab and n differ, so the two dimensions cannot be confused unnoticed
        dtype = torch.float64 if index % 2 else torch.float32
        logits = randn(g, batch, n, vocab, dtype=dtype) * 2
        tokens = torch.randint(0, vocab, (batch, n), generator=g)
        tokens[0, 1] = 0  # id 0 is a target: a real token, not padding
        rows = "one row" if batch == 1 else f"{batch} rows"
        each = "1 prediction" if n == 2 else f"{n - 1} predictions each"
        name = (f"{rows} of {n} tokens ({each}), n_vocab = {vocab}, id 0 among the targets"
                + (", float64" if dtype == torch.float64 else ""))
        yield Case(name, (logits, tokens), tolerance=(1e-5, 1e-6))


@check(reference=causal_lm_loss, mistakes=LOSS_MISTAKES, what="the loss", contract=LOSS_CONTRACT,
       passed="{cases} generated cases: batches and one row, n from 2 up, n_vocab ≠ n, float64, a mean over the "
              "shifted targets.")
def check_causal_lm_loss() -> Iterator[Case]:
    """Check `causal_lm_loss(logits (B, n, n_vocab), tokens (B, n)) -> scalar`: the mean next-token cross-entropy."""
    yield from _loss_cases(1100)


# ---- top-k and top-p filtering ---------------------------------------------------------------------------

#: The filtered logits are the input's own numbers or -inf: compared (almost) exactly.
FILTERED = (0.0, 1e-6)


def _keep(logits: Tensor, keep: Tensor) -> Tensor:
    return logits.masked_fill(~keep, NEG_INF)


def _top_k_smallest(logits: Tensor, k: int) -> Tensor:
    index = logits.topk(k, dim=-1, largest=False).indices
    return _keep(logits, torch.zeros_like(logits, dtype=torch.bool).scatter(-1, index, True))


def _top_k_exactly_k(logits: Tensor, k: int) -> Tensor:
    """Exactly k tokens per row, ties at the k-th value broken by topk's order."""
    index = logits.topk(k, dim=-1).indices
    return _keep(logits, torch.zeros_like(logits, dtype=torch.bool).scatter(-1, index, True))


def _top_k_first_row_threshold(logits: Tensor, k: int) -> Tensor:
    kth = logits.reshape(-1, logits.shape[-1])[0].topk(k).values[-1]
    return logits.masked_fill(logits < kth, NEG_INF)


def _top_k_along_dim_1(logits: Tensor, k: int) -> Tensor:
    kth = logits.topk(k, dim=1).values[:, -1:]  # right for (B, n_vocab) only
    return logits.masked_fill(logits < kth, NEG_INF)


def _filter_mistakes(right: Callable[[Tensor, float], Tensor]) -> list[Mistake]:
    """The two mistakes top-k and top-p share: 0 instead of -inf, and probabilities instead of logits."""
    return [
        Mistake("the dropped tokens must get -inf, not 0: softmax gives a logit of 0 a probability of its own.",
                lambda logits, a: right(logits, a).nan_to_num(neginf=0.0)),
        Mistake("return filtered LOGITS (the kept ones unchanged, the others -inf), not probabilities: the sampler "
                "applies softmax afterwards.", lambda logits, a: right(logits, a).softmax(-1)),
    ]


EACH_ROW = "each row has its own threshold: filter every row by its own scores, not by the first row's."
LAST_DIMENSION = ("work along the last dimension (the vocabulary), whatever the number of leading dimensions: "
                  "dimension 1 is the vocabulary only for 2-D input.")
TIES_KEPT = ("a tie at the k-th largest logit: keep every logit equal to the k-th largest too, even if that is "
             "more than k tokens (which of two equal logits to drop would be arbitrary).")

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
    Mistake(EACH_ROW, _top_k_first_row_threshold),
    Mistake(LAST_DIMENSION, _top_k_along_dim_1, crashes=True),
    Mistake(TIES_KEPT, _top_k_exactly_k),
]

TOP_K_CONTRACT = [
    Term("several rows, each with its own k-th largest logit", "rows of", _top_k_first_row_threshold, "each row"),
    Term("any number of leading dimensions: logits (..., n_vocab)", "a (2, 3) batch", _top_k_along_dim_1,
         "last dimension"),
    Term("ties at the k-th largest logit: every tied logit kept", "a tie at the k-th logit", _top_k_exactly_k, "tie"),
]


def _tie_at_kth(logits: Tensor, k: int) -> Tensor:
    """`logits` with, in every row, the (k+1)-th and (k+2)-th largest set equal to the k-th, where they are."""
    values, order = logits.sort(dim=-1, descending=True)
    ties = order[..., k : k + 2]
    return logits.scatter(-1, ties, values[..., k - 1 : k].expand(ties.shape))


#: (how the logits are laid out, their shape without n_vocab, dtype)
LAYOUTS = (("4 rows of", (4,), torch.float32), ("a (2, 3) batch of rows of", (2, 3), torch.float64),
           ("one row of", (1,), torch.float32))


def _top_k_cases(seed: int) -> Iterator[Case]:
    g = generator(seed)
    for what, shape, dtype in LAYOUTS:
        vocab = int(torch.randint(6, 13, (), generator=g))
        logits = randn(g, *shape, vocab, dtype=dtype) * 2
        middle = int(torch.randint(2, vocab, (), generator=g))
        for k in (1, middle, vocab):
            label = f"k = n_vocab = {k}" if k == vocab else f"k = {k}"
            yield Case(f"{what} {vocab} logits with {label}", (logits, k), tolerance=FILTERED)
    for what, shape, dtype in LAYOUTS[:2]:
        vocab = int(torch.randint(6, 13, (), generator=g))
        for k in (1, int(torch.randint(2, vocab - 2, (), generator=g))):
            logits = _tie_at_kth(randn(g, *shape, vocab, dtype=dtype) * 2, k)
            yield Case(f"{what} {vocab} logits with k = {k} and a tie at the k-th logit (3 equal values)",
                       (logits, k), hint=TIES_KEPT, tolerance=FILTERED)


@check(reference=top_k_filter, mistakes=TOP_K_MISTAKES, what="the filtered logits", contract=TOP_K_CONTRACT,
       passed="{cases} generated cases: k = 1, k = n_vocab and in between, ties at the k-th logit, batched rows "
              "and float64.")
def check_top_k_filter() -> Iterator[Case]:
    """Check `top_k_filter(logits (..., n_vocab), k) -> (..., n_vocab)`: every logit ≥ the k-th largest kept.

    Ties with the k-th largest are kept too; every other entry is -inf.
    """
    yield from _top_k_cases(1110)


def _nucleus(logits: Tensor, p: float, *, rule: str = "before", descending: bool = True,
             unsort: bool = True, on_logits: bool = False, dim: int = -1) -> Tensor:
    """Top-p with switches that reproduce the typical mistakes."""
    scores = logits if on_logits else logits.softmax(-1)
    sorted_scores, order = scores.sort(dim=dim, descending=descending)
    cumulative = sorted_scores.cumsum(dim=dim)
    # "strict" (cumsum < p) also stands for cumsum <= p: the cases keep every running sum away from p.
    keep_sorted = cumulative - sorted_scores < p if rule == "before" else cumulative < p
    if rule != "before":
        keep_sorted[..., 0] = True  # such code usually still keeps the most likely token
    keep = torch.zeros_like(keep_sorted).scatter(dim, order, keep_sorted) if unsort else keep_sorted
    return _keep(logits, keep)


def _nucleus_size_of_first_row(logits: Tensor, p: float) -> Tensor:
    """The first row's nucleus size, used for every row: the size must come from each row's own mass."""
    size = int(top_p_filter(logits.reshape(-1, logits.shape[-1])[:1], p).isfinite().sum())
    return _top_k_exactly_k(logits, size)


def _nucleus_shift_losing_the_top(logits: Tensor, p: float) -> Tensor:
    """Remove where the running sum passes p, shifted right by one, but the first entry never reset to kept."""
    sorted_probs, order = logits.softmax(-1).sort(dim=-1, descending=True)
    remove = sorted_probs.cumsum(dim=-1) > p
    remove[..., 1:] = remove[..., :-1].clone()  # the token that crosses p stays ...
    return logits.masked_fill(remove.scatter(-1, order, remove), NEG_INF)  # ... but the first may go


def _nucleus_without_the_p_1_rule(logits: Tensor, p: float) -> Tensor:
    """The nucleus by running sums at p = 1 too: float32's sum reaches 1.0 early and drops the tiny tail."""
    return _nucleus(logits, p)


P_1_KEEPS_ALL = ("p = 1 keeps every token: return the logits unchanged (a copy) when p >= 1. In float32 the running "
                 "sum reaches 1.0 before the tokens of tiny probability, and the rule 'mass before it < p' drops them.")

TOP_TOKEN = ("the most likely token is always kept, even when its probability alone is above p: the nucleus is "
             "then that token alone, never empty.")

TOP_P_MISTAKES = [
    Mistake(P_1_KEEPS_ALL, _nucleus_without_the_p_1_rule),
    Mistake("you dropped the token that crosses p: the nucleus is the smallest set with mass >= p, so it must "
            "include the token whose running sum first reaches p. Keep a token when the mass of the tokens BEFORE "
            "it is below p, not when its own running sum is.",
            lambda logits, p: _nucleus(logits, p, rule="strict")),
    Mistake("sort the probabilities in DEcreasing order: the nucleus is made of the most likely tokens.",
            lambda logits, p: _nucleus(logits, p, descending=False)),
    Mistake("the mask you built is in sorted order: scatter it back to the tokens' own positions with the sort's "
            "indices before applying it.", lambda logits, p: _nucleus(logits, p, unsort=False)),
    Mistake("p is a probability mass: add up softmax(logits), not the logits themselves.",
            lambda logits, p: _nucleus(logits, p, on_logits=True)),
    *_filter_mistakes(top_p_filter),
    Mistake("each row has its own nucleus: its size comes from that row's own probabilities, not the first row's.",
            _nucleus_size_of_first_row),
    Mistake(LAST_DIMENSION, lambda logits, p: _nucleus(logits, p, dim=1), crashes=True),
    Mistake(TOP_TOKEN, _nucleus_shift_losing_the_top),
]

TOP_P_CONTRACT = [
    Term("several rows, each with its own nucleus", "rows of", _nucleus_size_of_first_row, "each row"),
    Term("any number of leading dimensions: logits (..., n_vocab)", "a (2, 3) batch",
         lambda logits, p: _nucleus(logits, p, dim=1), "last dimension"),
    Term("p below the most likely token's probability: the nucleus is that token alone",
         "below a row's top probability", _nucleus_shift_losing_the_top, "most likely token is always kept"),
    Term("p = 1 with tail probabilities too small for float32's running sum: every token kept",
         "tail probabilities", _nucleus_without_the_p_1_rule, "p = 1 keeps every token"),
]

#: How far each running sum of a case stays from p, so that every correct rounding keeps the same tokens.
MARGIN = 1e-3


def _clear_of(logits: Tensor, p: float) -> bool:
    """True if no row's running mass before a token is within MARGIN of p (and every token has mass > MARGIN)."""
    probs = logits.double().softmax(-1).sort(dim=-1, descending=True).values
    before = probs.cumsum(-1) - probs
    return bool(((before - p).abs() > MARGIN).all()) and bool((probs > MARGIN).all())


def _top_p_cases(seed: int) -> Iterator[Case]:
    g = generator(seed)
    for what, shape, dtype in LAYOUTS:
        vocab = int(torch.randint(6, 13, (), generator=g))
        while True:  # draw until the random p values and the rows are clear of each other (see MARGIN)
            logits = randn(g, *shape, vocab, dtype=dtype) * 1.5
            ps = [0.05, *(round(float(torch.empty(()).uniform_(0.2, 0.95, generator=g)), 2) for _ in range(2)), 1.0]
            if all(_clear_of(logits, p) for p in ps):
                break
        for p in ps:
            below = ", below a row's top probability" if p < float(logits.softmax(-1).amax()) else ""
            yield Case(f"{what} {vocab} logits with p = {p}{below}", (logits, p), tolerance=FILTERED)
    # Rows whose running sum reaches 1.0 in float32 before the tail: only the p = 1 rule keeps those tokens.
    order = torch.randperm(5, generator=g)
    tails = torch.tensor([[30.0, 0.0, 0.0, 0.0, -5.0], [30.0, 30.0, 0.0, 0.0, -5.0]])[:, order]
    yield Case("2 rows of 5 float32 logits with p = 1 and tail probabilities below 1e-13", (tails, 1.0),
               hint=P_1_KEEPS_ALL, tolerance=FILTERED)


@check(reference=top_p_filter, mistakes=TOP_P_MISTAKES, what="the filtered logits", contract=TOP_P_CONTRACT,
       passed="{cases} generated cases: p from 0.05 (only the most likely token) to 1 (every token, tiny tails "
              "included), batched rows and float64.")
def check_top_p_filter() -> Iterator[Case]:
    """Check `top_p_filter(logits (..., n_vocab), p) -> (..., n_vocab)`: the smallest most likely set with mass >= p.

    p = 1 keeps every token (the logits unchanged), tokens of tiny probability included.
    """
    yield from _top_p_cases(1120)
