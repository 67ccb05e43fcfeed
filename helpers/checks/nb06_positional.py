"""Checks of notebook 06: the sinusoidal positional encoding, and the module that adds it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from helpers.checks.core import TOLERANCE, Case, Failure, Kind, Mistake, Stop, Term, check, generator, randn, seeded
from helpers.checks.nb05_multi_head import DROPOUT_LAYER, keyed_dropout
from helpers.positional import PositionalEncoding, sinusoidal_positional_encoding

#: The telling pieces of each exercise's solution: no Hint 1 or 2 and no ❌ hint may contain one.
SOLUTION_FRAGMENTS: dict[str, list[str]] = {
    "sinusoidal_positional_encoding": ["arange(0, d_model, 2", "0::2]", "1::2]", "/ 10000 **", "/ 10000**",
                                       "pos / 10000 ", "torch.stack([torch.sin(angle), torch.cos(angle)]"],
    "PositionalEncoding": ['register_buffer("pe"', "self.pe[: x.shape[1]]", "self.pe[:x.shape[1]]",
                           "self.dropout(x + self.pe", "x.shape[1]]", "[:n]", "[: n]"],
}


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
    Mistake("a single position (n = 1) is still a table of one row, shape (1, d_model): `squeeze` (without a "
            "dimension) or indexing drops the row dimension.", lambda n, d_model: _variant(n, d_model).squeeze(0)),
]

CONTRACT = [
    Term("a single position, n = 1", "a single position", MISTAKES[-1].wrong, "n = 1"),
]


def _table_sizes(g: torch.Generator) -> Iterator[tuple[str, int, int]]:
    """(what the case pins, n, d_model): drawn, n different from d_model so that a transposed table fails."""
    for _ in range(3):
        d_model = 2 * int(torch.randint(2, 17, (1,), generator=g))
        n = int(torch.randint(2, 61, (1,), generator=g))
        yield "", n + (n == d_model), d_model
    yield "a single position: ", 1, 2 * int(torch.randint(2, 9, (1,), generator=g))
    yield "one column pair: ", int(torch.randint(3, 20, (1,), generator=g)), 2


@check(reference=lambda n, d_model: sinusoidal_positional_encoding(n, d_model, dtype=torch.float64),
       mistakes=MISTAKES, contract=CONTRACT,
       passed="{cases} generated cases: n from 1 to 60, d_model from 2 (one column pair) to 32.")
def check_sinusoidal_positional_encoding() -> Iterator[Case]:
    """Check `sinusoidal_positional_encoding(n, d_model) -> (n, d_model)`, any n >= 1 and even d_model >= 2."""
    g = generator(0)
    for pinned, n, d_model in _table_sizes(g):
        yield Case(f"{pinned}n={n}, d_model={d_model}", (n, d_model))


# ---- the module: PositionalEncoding ----------------------------------------------------------------

MODULE_PARTS = ("output", "grad_x")
MODULE_SHOWN = {"output": "the output", "grad_x": "the gradient of x"}

BUFFER_HINT = ("compute the table once in __init__ and keep it with self.register_buffer: a buffer moves with "
               ".to(device) and is saved with the model, but is never trained.")


def _table_buffers(module: nn.Module, max_len: int, d_model: int) -> list[Tensor]:
    return [b for b in module.buffers() if b.numel() == max_len * d_model]


def _run_module(candidate: Callable[..., object], *, d_model: int, max_len: int | None, dropout: float,
                train: bool, x: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """Build `candidate(d_model, max_len=..., dropout=...)`, see that its table is a buffer, run it forward and back."""
    kwargs: dict[str, object] = {"dropout": dropout} if max_len is None else {"max_len": max_len, "dropout": dropout}
    with seeded(seed):
        module = candidate(d_model, **kwargs)
    if not isinstance(module, nn.Module):
        raise Stop(Failure(Kind.WRONG_TYPE, f"PositionalEncoding(...) built a {type(module).__name__}, "
                            "expected an nn.Module", "subclass nn.Module and call super().__init__() first."))
    parameters = [name for name, _ in module.named_parameters()]
    if parameters:
        raise Stop(Failure(Kind.WRONG_TYPE, f"your module has trained parameters ({', '.join(parameters)}); "
                            "the sinusoidal code is fixed, nothing in it is trained", BUFFER_HINT))
    length = 5000 if max_len is None else max_len
    if not _table_buffers(module, length, d_model):
        rows = [b.numel() // d_model for b in module.buffers() if b.numel() % d_model == 0 and b.shape[-1] == d_model]
        hint = BUFFER_HINT if not rows else (
            f"your table has {rows[0]} rows; it needs one per position up to max_len (max_len=5000 when it is "
            "not given, its default in the statement).")
        raise Stop(Failure(Kind.WRONG_TYPE, f"no buffer of your module holds the table of max_len × d_model = "
                            f"{length} × {d_model} numbers", hint))
    module.train(train)
    leaf = x.detach().clone().requires_grad_(True)
    with seeded(seed + 1), keyed_dropout():
        output = module(leaf)
    if isinstance(output, Tensor) and output.requires_grad:
        upstream = randn(generator(seed + 2), *output.shape, dtype=x.dtype).to(output.dtype)
        (output * upstream).sum().backward()
    return output, leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)


class _WrongPositionalEncoding(nn.Module):
    """The module with switches that reproduce the typical mistakes (the table from `_variant`)."""

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.1, *, combine: str = "add",
                 dropout_at: str = "sum", **table: object) -> None:
        super().__init__()
        self.combine, self.dropout_at = combine, dropout_at
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", _variant(max_len, d_model, **table).float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        pe = self.pe[: x.shape[1]].to(x.dtype)
        if self.dropout_at == "code":
            pe = self.dropout(pe)
        if self.dropout_at == "always":
            return nn.functional.dropout(x + pe, self.dropout.p, training=True)
        if self.combine == "concat":
            combined = torch.cat([x, pe.expand(x.shape[0], -1, -1)], dim=-1)
        else:
            combined = x + pe
        return self.dropout(combined) if self.dropout_at == "sum" else combined


def _module_mistake(hint: str, **switches: object) -> Mistake:
    return Mistake(hint, functools.partial(_WrongPositionalEncoding, **switches))


MODULE_MISTAKES = [
    _module_mistake("the code is concatenated to x; it is added: x + PE keeps the width d_model.", combine="concat"),
    _module_mistake("sin and cos are swapped in your table: even columns (0, 2, ...) hold sin, odd columns cos.",
                    swap=True),
    _module_mistake("your table puts all sines first, then all cosines; column 2i holds sin, column 2i + 1 "
                    "the cos of the same frequency.", concat=True),
    _module_mistake("the frequency exponent is i / d_model; the paper's is 2i / d_model (i counts column pairs).",
                    exponent="i/d"),
    _module_mistake("the frequency exponent uses the column index where the pair index i belongs: 2i / d_model "
                    "with i = 0, 1, ..., d_model/2 - 1.", exponent="column/d"),
    _module_mistake("positions start at 1 in your table; the first token has position 0.", start=1),
    _module_mistake("dropout is missing: the paper applies dropout to the sum x + PE (in train() only).",
                    dropout_at="none"),
    _module_mistake("dropout belongs on the sum x + PE, not on the code alone.", dropout_at="code"),
    _module_mistake("in eval() dropout must be off: nn.Dropout follows the module's train()/eval() by itself; "
                    "a functional dropout needs training=self.training.", dropout_at="always"),
]


class _ShortTable(PositionalEncoding):
    """Right, except that its default max_len is 512: the statement's is 5000."""

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.1) -> None:
        super().__init__(d_model, max_len=max_len, dropout=dropout)


MODULE_CONTRACT = [
    Term("train() with 0 < dropout < 1: on the sum x + PE", "train() with dropout",
         functools.partial(_WrongPositionalEncoding, dropout_at="code"), "not on the code alone"),
    Term("train() with 0 < dropout < 1: dropout is applied", "train() with dropout",
         functools.partial(_WrongPositionalEncoding, dropout_at="none"), "dropout is missing"),
    Term("eval() with dropout > 0: no dropout", "in eval() with dropout",
         functools.partial(_WrongPositionalEncoding, dropout_at="always"), "in eval()"),
    Term("max_len not given: its default, 5000", "the default max_len", _ShortTable, "max_len=5000"),
]


def _reference_module(d_model: int, max_len: int = 5000, dropout: float = 0.1) -> PositionalEncoding:
    return PositionalEncoding(d_model, max_len=max_len, dropout=dropout)


@check(reference=_reference_module, mistakes=MODULE_MISTAKES, contract=MODULE_CONTRACT, returns=MODULE_PARTS,
       shown=MODULE_SHOWN,
       passed="{cases} generated cases: the table is a buffer (0 trained parameters), eval() and train() with "
              "dropout, gradients, up to 4000 positions with the default max_len.")
def check_PositionalEncoding() -> Iterator[Case]:  # noqa: N802 (named like the class it checks)
    """Check the class `PositionalEncoding(d_model, max_len=5000, dropout=0.1)`: `forward(x) = dropout(x + PE[:n])`.

    x `(B, n, d_model)` -> `(B, n, d_model)`; the table `(max_len, d_model)` is a buffer, not a parameter.
    Dropout runs keyed (`nb05_multi_head.keyed_dropout`), so a train() case with 0 < p < 1 compares entry by
    entry.
    """
    g = generator(70)
    p = round(0.2 + 0.4 * float(torch.rand(1, generator=g)), 2)
    d_model = 2 * int(torch.randint(2, 9, (1,), generator=g))
    B, n = int(torch.randint(2, 4, (1,), generator=g)), int(torch.randint(3, 9, (1,), generator=g))
    for seed, (name, shape, max_len, dropout, train, dtype, tolerance) in enumerate([
        (f"in eval() with dropout={p}, max_len={n + 3}", (B, n, d_model), n + 3, p, False, torch.float32, TOLERANCE),
        ("n = max_len, float64, in eval()", (B, n, 2 * d_model), n, 0.0, False, torch.float64, TOLERANCE),
        (f"train() with dropout={p}", (B, n, d_model), 4 * n, p, True, torch.float32, TOLERANCE),
        # The default max_len; float32 angles near position 4000 are off by about 3e-4, which is right enough.
        ("4000 positions with the default max_len=5000", (1, 4000, 8), None, 0.0, False, torch.float32, (1e-3, 2e-3)),
    ]):
        x = randn(g, *shape, dtype=dtype)
        yield Case(name, tolerance=tolerance, hint=DROPOUT_LAYER.replace("attention weights", "sum") if train else "",
                   run=functools.partial(
            _run_module, d_model=shape[-1], max_len=max_len, dropout=dropout, train=train, x=x, seed=80 + seed))
