"""Decoding a language model (notebook 11): greedy, temperature, top-k, top-p (nucleus), beam search.

A language model gives, after any prefix, a distribution over the next token: `softmax(logits)`.
Generating text means choosing a token from it, appending it, and repeating.

- **Greedy**: always the most likely token. Deterministic; often dull and repetitive.
- **Temperature** τ: sample from `softmax(logits / τ)`. τ < 1 sharpens the distribution (lower
  entropy), τ > 1 flattens it, τ → 0 becomes greedy.
- **Top-k**: keep the k most likely tokens (and any tied with the k-th), renormalise, sample.
- **Top-p** (nucleus): keep the *smallest* set of most likely tokens whose probability adds up to
  at least p, renormalise, sample. The set adapts: few tokens where the model is sure, many where not.
- **Beam search**: keep the `beam_width` most likely *sequences* (sum of log-probabilities), not
  tokens; it finds continuations more likely than greedy's. Beam width 1 is greedy.

The functions take a model in the course's protocol: `model(tokens (B, n)) -> logits (B, n, n_vocab)`,
and, for the KV cache, `model.step(tokens (B, m), cache) -> (logits (B, m, n_vocab), cache)`, as
`helpers.gpt.GPT` provides (notebook 12's model does too).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from helpers.tensors import format_shape, require_tensor


def _require_logits(logits: Tensor) -> None:
    require_tensor("logits", logits)
    if logits.ndim < 1 or not logits.is_floating_point():
        raise ValueError(f"logits: expected floating-point scores of shape (..., n_vocab), "
                         f"got {format_shape(logits.shape)} of dtype {logits.dtype}")


def entropy(logits: Tensor) -> Tensor:
    """Entropy (nats) of `softmax(logits)` along the last dimension: `(..., n_vocab) -> (...)`; -inf logits add 0."""
    _require_logits(logits)
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p.nan_to_num(neginf=0.0)).sum(dim=-1)


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """`logits / τ` (τ > 0): the scores whose softmax is the sampling distribution at temperature τ."""
    _require_logits(logits)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 here (0 means greedy: use argmax), got {temperature!r}")
    return logits / temperature


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep, in each row `(..., n_vocab)`, every logit at least as large as its k-th largest; set the others to -inf.

    Ties at the k-th largest value are all kept, so a row may keep more than k tokens: which of two
    equal logits to drop would be arbitrary. `transformers`' `TopKLogitsWarper` keeps them too (it
    removes only the logits below the k-th largest). A k above n_vocab keeps every token.
    """
    _require_logits(logits)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k:
        raise ValueError(f"k must be a positive int, got {k!r}")
    kth = logits.topk(min(k, logits.shape[-1]), dim=-1).values[..., -1:]  # (..., 1): the k-th largest of each row
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Keep, in each row `(..., n_vocab)`, the smallest set of most likely tokens whose probability is at least p.

    Sort the probabilities in decreasing order and add them up: a token is kept when the mass of
    the tokens *before* it is still below p, which keeps the token that crosses p (dropping it
    would leave less than p). The most likely token is always kept. p = 1 keeps every token: the
    logits come back unchanged (a copy), as Hugging Face's `generate` skips its top-p warper at 1.0,
    because in float32 the running sum can reach 1.0 before the tokens of tiny probability.
    """
    _require_logits(logits)
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p!r}")
    if p >= 1:
        return logits.clone()
    probs = torch.softmax(logits, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    keep_sorted = mass_before < p
    keep = torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


def next_token_logits(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> Tensor:
    """The scores decoding samples from: temperature, then top-k, then top-p: `(..., n_vocab) -> (..., n_vocab)`."""
    scores = apply_temperature(logits, temperature)
    if top_k is not None:
        scores = top_k_filter(scores, top_k)
    if top_p is not None:
        scores = top_p_filter(scores, top_p)
    return scores


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One next token per row of `logits (B, n_vocab)` -> `(B,)` long; temperature 0 is greedy (argmax)."""
    _require_logits(logits)
    if logits.ndim != 2:
        raise ValueError(f"logits: expected shape (B, n_vocab), got {format_shape(logits.shape)}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(next_token_logits(logits, temperature, top_k, top_p), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _require_prompt(prompt: Tensor) -> None:
    require_tensor("prompt", prompt)
    if prompt.ndim != 2 or prompt.is_floating_point() or prompt.shape[1] < 1:
        raise ValueError(f"prompt: expected integer token ids of shape (B, n ≥ 1), got {format_shape(prompt.shape)}")


@torch.no_grad()
def generate(
    model: nn.Module,
    prompt: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    use_cache: bool = True,
) -> Tensor:
    """Continue `prompt (B, n)` by `max_new_tokens` tokens: `(B, n + max_new_tokens)`.

    With `use_cache` the model reads the prompt once through `model.step` and then one new token
    per step, attending to the cached keys and values; without it, every step runs the whole
    sequence again. Both give the same tokens. `seed` makes sampling reproducible (a generator
    of its own, so the global random state is left alone). Put the model in `eval()` mode first.
    """
    _require_prompt(prompt)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int ≥ 0, got {max_new_tokens!r}")
    generator = None
    if seed is not None:
        generator = torch.Generator(device=prompt.device).manual_seed(seed)
    tokens = prompt
    cache = None
    new = prompt  # what the model has not read yet
    for _ in range(max_new_tokens):
        if use_cache:
            logits, cache = model.step(new, cache)
        else:
            logits = model(tokens)
        next_token = sample_next(logits[:, -1], temperature, top_k, top_p, generator).unsqueeze(1)
        tokens = torch.cat([tokens, next_token], dim=1)
        new = next_token
    return tokens


@torch.no_grad()
def sequence_log_prob(model: nn.Module, tokens: Tensor, prompt_len: int) -> Tensor:
    """`(B,)`: the model's log-probability of `tokens[:, prompt_len:]` given the prompt before them."""
    log_p = torch.log_softmax(model(tokens)[:, :-1].double(), dim=-1)  # position i predicts token i + 1
    picked = log_p.gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
    return picked[:, prompt_len - 1 :].sum(dim=-1)


@torch.no_grad()
def beam_search(
    model: nn.Module, prompt: Tensor, max_new_tokens: int, beam_width: int = 4, eos_id: int | None = None
) -> tuple[Tensor, Tensor]:
    """The `beam_width` most likely continuations of one prompt `(1, n)` found by beam search.

    At each step every beam is extended by every token, the score of an extension is its beam's
    score plus the token's log-probability, and the `beam_width` best extensions survive. A beam
    that has produced `eos_id` is finished: it can only be extended by `eos_id` again, at no cost.

    Returns:
        `(sequences (beam_width, n + max_new_tokens), scores (beam_width,))`, best first; a score is
        the sum of the log-probabilities of the generated tokens.
    """
    _require_prompt(prompt)
    if prompt.shape[0] != 1:
        raise ValueError(f"prompt: beam search continues one prompt, shape (1, n), got {format_shape(prompt.shape)}")
    if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width < 1:
        raise ValueError(f"beam_width must be a positive int, got {beam_width!r}")
    beams = prompt
    scores = torch.zeros(1, dtype=torch.float64, device=prompt.device)
    for _ in range(max_new_tokens):
        log_p = torch.log_softmax(model(beams)[:, -1].double(), dim=-1)  # (beams, n_vocab)
        if eos_id is not None:
            done = beams[:, -1] == eos_id
            log_p[done] = float("-inf")
            log_p[done, eos_id] = 0.0
        vocab = log_p.shape[-1]
        candidates = (scores[:, None] + log_p).flatten()  # (beams · V,)
        scores, index = candidates.topk(min(beam_width, candidates.numel()))
        beams = torch.cat([beams[index // vocab], (index % vocab).unsqueeze(1)], dim=1)
    return beams, scores
