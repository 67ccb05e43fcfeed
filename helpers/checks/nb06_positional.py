"""Check for notebook 06: the sinusoidal positional encoding."""

from __future__ import annotations

import torch

from helpers.checks.core import CheckResult, Probe, run_check
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


def check_sinusoidal_positional_encoding(candidate: object) -> CheckResult:
    """Check `sinusoidal_positional_encoding(n, d_model) -> (n, d_model)`."""

    def body(probe: Probe) -> str:
        for n, d_model in [(10, 8), (7, 16), (50, 32), (1, 4)]:
            expected = sinusoidal_positional_encoding(n, d_model, dtype=torch.float64)
            mistakes = [
                ("sin and cos are swapped: even columns (0, 2, ...) hold sin, odd columns cos.",
                 lambda n=n, d=d_model: _variant(n, d, swap=True)),
                ("sin and cos are not interleaved: you put all sines first, then all cosines. "
                 "Column 2i holds sin, column 2i + 1 the cos of the same frequency.",
                 lambda n=n, d=d_model: _variant(n, d, concat=True)),
                ("the exponent is i / d_model; the paper's is 2i / d_model (i counts column pairs).",
                 lambda n=n, d=d_model: _variant(n, d, exponent="i/d")),
                ("the exponent uses the column index where the pair index i belongs: 2i / d_model with "
                 "i = 0, 1, ..., d_model/2 - 1.", lambda n=n, d=d_model: _variant(n, d, exponent="column/d")),
                ("the exponent uses i instead of 2i / d_model: divide by d_model.",
                 lambda n=n, d=d_model: _variant(n, d, exponent="i")),
                ("positions start at 1; the first token has position 0.",
                 lambda n=n, d=d_model: _variant(n, d, start=1)),
                ("the result is transposed: rows are positions, columns are dimensions, shape (n, d_model).",
                 lambda n=n, d=d_model: _variant(n, d).T),
            ]
            probe.expect_close(probe.call(n, d_model), expected, f"n={n}, d_model={d_model}", mistakes,
                               rtol=1e-4, atol=1e-5)
        return f"{probe.cases} cases, from n=1 to n=50 and d_model from 4 to 32."

    return run_check("sinusoidal_positional_encoding", candidate, body)
