"""helpers: the shared package of "Attention, step by step".

One module per concept, in course order; later notebooks import what earlier ones derived.

- `helpers.environment`: `setup()`, the first call of every notebook.
- `helpers.tensors`: shape validation and the batched dot product (notebook 00).
- `helpers.checks`: the exercise checks.
- `helpers.notebooks`, `helpers.workbook`, `helpers.progress`, `helpers.cli`: the `course` command.
"""

from helpers.environment import setup

__all__ = ["setup"]
__version__ = "0.1.0"
