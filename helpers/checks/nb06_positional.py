"""Check of notebook 06: the sinusoidal positional encoding."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from helpers.checks.core import Case, Mistake, check
from helpers.positional import sinusoidal_positional_encoding


def _variant(n: int, d_model: int, *, swap: bool = False, concat: bool = False, exponent: str = "2i/d",
             start: int = 0) -> torch.Tensor:
    """The encoding with switches that reproduce the typical mistakes."""
    position = torch.arange(start, start + n, dtype=torch.float64).unsqueeze(1)
    pair = torch.arange(d_model // 2, dtype=torch.float64)
    exponents = {
        "2i/d": 2 * pair / d_model,
        "i/d": pair / d_model,  # forgot the factor 2
        "column/d": 2 * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model,  # i is the column index
        "i": pair,  # no division by d_model
    }
    angle = position / 10000 ** exponents[exponent]
    first, second = (torch.cos(angle), torch.sin(angle)) if swap else (torch.sin(angle), torch.cos(angle))
    if concat:
        return torch.cat([first, second], dim=-1)
    pe = torch.empty(n, d_model, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = first, second
    return pe


def _mistake(hint: str, **switches: object) -> Mistake:
    return Mistake(hint, lambda n, d_model: _variant(n, d_model, **switches))  # type: ignore[arg-type]


MISTAKES = [
    _mistake("sin and cos are swapped: even columns (0, 2, ...) hold sin, odd columns cos.", swap=True),
    _mistake("sin and cos are not interleaved: you put all sines first, then all cosines. "
             "Column 2i holds sin, column 2i + 1 the cos of the same frequency.", concat=True),
    _mistake("the exponent is i / d_model; the paper's is 2i / d_model (i counts column pairs).", exponent="i/d"),
    _mistake("the exponent uses the column index where the pair index i belongs: 2i / d_model with "
             "i = 0, 1, ..., d_model/2 - 1.", exponent="column/d"),
    _mistake("the exponent uses i instead of 2i / d_model: divide by d_model.", exponent="i"),
    _mistake("positions start at 1; the first token has position 0.", start=1),
    Mistake("the result is transposed: rows are positions, columns are dimensions, shape (n, d_model).",
            lambda n, d_model: _variant(n, d_model).T),
]


@check(reference=lambda n, d_model: sinusoidal_positional_encoding(n, d_model, dtype=torch.float64),
       mistakes=MISTAKES, passed="{cases} cases, from n=1 to n=50 and d_model from 4 to 32.")
def check_sinusoidal_positional_encoding() -> Iterator[Case]:
    """Check `sinusoidal_positional_encoding(n, d_model) -> (n, d_model)`."""
    for n, d_model in [(10, 8), (7, 16), (50, 32), (1, 4)]:
        yield Case(f"n={n}, d_model={d_model}", (n, d_model))
