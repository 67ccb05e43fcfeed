"""Every check is as wide as its exercise: each entry of its contract is covered, and wrong only there fails.

A check's contract (`Check.contract`, a table of `core.Term`s beside the check in its module) lists
what the exercise's statement allows: shapes and layouts, optional arguments, values that vary. For
each entry this test runs an implementation that is right everywhere else and wrong only there, and
asserts that the check fails with a hint naming that mistake; and that at least one of the check's
generated cases names the entry.
"""

from __future__ import annotations

from functools import cache

import pytest

from helpers import checks
from helpers.checks.core import Status

CHECKS = {name.removeprefix("check_"): getattr(checks, name) for name in checks.__all__ if name.startswith("check_")}
TERMS = [(name, term) for name, fn in CHECKS.items() for term in fn.spec.contract]


def test_every_check_has_a_contract():
    without = [name for name, fn in CHECKS.items() if not fn.spec.contract]
    assert not without, f"checks without a contract table: {without}"


@cache
def case_names(name: str) -> tuple[str, ...]:
    """The names of a check's generated cases, made once per check rather than once per entry of its contract:
    its cases come from a seeded local generator, so every call names the same cases (greedy_decode's take
    about 0.2 s to make, for each of its entries)."""
    return tuple(case.name for case in CHECKS[name].spec.cases())


@pytest.mark.parametrize(("name", "term"), TERMS, ids=[f"{n}: {t.allows}" for n, t in TERMS])
def test_each_entry_is_covered_by_a_named_case(name, term):
    names = case_names(name)
    assert any(term.covered_by in case for case in names), \
        f"check_{name}: no case named with {term.covered_by!r} covers {term.allows!r}; cases: {names}"


@pytest.mark.parametrize(("name", "term"), TERMS, ids=[f"{n}: {t.allows}" for n, t in TERMS])
def test_wrong_only_there_fails_with_a_hint_naming_it(name, term):
    result = CHECKS[name](term.wrong)
    assert result.status is Status.FAILED, f"check_{name} passes an implementation wrong only on " \
                                           f"{term.allows!r}: {result.message}"
    assert term.named.lower() in result.hint.lower(), \
        f"check_{name}, wrong only on {term.allows!r}: the hint does not say {term.named!r}: {result.message}"
