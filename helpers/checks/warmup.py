"""Check for notebook 00's warm-up exercise: the batched dot product."""

from __future__ import annotations

import torch
from torch import Tensor

from helpers.checks.core import CheckResult, Probe, run_check
from helpers.tensors import batched_dot


def _inputs(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(shape, generator=generator, dtype=dtype)
    b = torch.randn(shape, generator=generator, dtype=dtype)
    return a, b


def check_batched_dot(candidate: object) -> CheckResult:
    """Check `batched_dot(a, b)`: `(..., d), (..., d) -> (...)`, one dot product per vector pair."""

    def body(probe: Probe) -> str:
        cases = [
            # Batches first: they tell the typical mistakes apart; a lone pair of vectors cannot.
            ("a batch of 3 vector pairs (shape (3, 5))", (3, 5), torch.float32),
            ("a (2, 3, 6) batch", (2, 3, 6), torch.float32),
            ("a (2, 3, 6) batch in float64", (2, 3, 6), torch.float64),
            ("a (2, 2, 3, 4) batch", (2, 2, 3, 4), torch.float32),
            ("two single vectors of length 4 (shape (4,))", (4,), torch.float32),
        ]
        for seed, (case, shape, dtype) in enumerate(cases):
            a, b = _inputs(shape, dtype, seed)
            expected = batched_dot(a, b)
            mistakes = [
                ("you multiplied element by element but did not sum: add up over the last dimension "
                 "(.sum(dim=-1)).", lambda a=a, b=b: a * b),
                ("you summed over every dimension and lost the batch: sum over the last dimension only "
                 "(.sum(dim=-1)).", lambda a=a, b=b: (a * b).sum()),
                ("you summed over the first dimension; the vectors run along the last one: use dim=-1.",
                 lambda a=a, b=b: (a * b).sum(dim=0)),
                ("you kept the summed dimension (keepdim=True): the result should have shape a.shape[:-1].",
                 lambda a=a, b=b: (a * b).sum(dim=-1, keepdim=True)),
                ("you computed every vector against every other (a matrix product, like QKᵀ in notebook 02); "
                 "here each vector pairs only with its partner in b.",
                 lambda a=a, b=b: a @ b.transpose(-2, -1)),
                ("you divided by the vectors' lengths: that is the cosine similarity, not the dot product.",
                 lambda a=a, b=b: torch.nn.functional.cosine_similarity(a, b, dim=-1)),
                ("you compared the vectors' lengths squared instead of multiplying a with b.",
                 lambda a=a, b=b: (a * a).sum(dim=-1)),
            ]
            probe.expect_close(probe.call(a, b), expected, case, mistakes)
        return f"{probe.cases} cases, from one vector pair to a (2, 2, 3, 4) batch, float32 and float64."

    return run_check("batched_dot", candidate, body)
