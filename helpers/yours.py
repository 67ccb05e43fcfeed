"""Which components are the learner's: notebook 09 trains a Transformer made of their own classes.

The learner writes `MultiHeadAttention` (05), `PositionalEncoding` (06), `FeedForward` and
`EncoderLayer` (07), `DecoderLayer` (08) and `Transformer` (09) as exercises. `resolve` reads
the saved notebooks of one folder (the complete ones in `notebooks/`, the learner's in their
workbook folder) and, component by component, in course order:

1. takes the solution cell of the exercise (nbgrader `grade_id` = the class's name);
2. runs it in a clean namespace: the notebook's setup imports, its other exercise cells, and
   the components resolved so far under their names (so the learner's `EncoderLayer` is
   built from the `MultiHeadAttention` chosen for it, never from a notebook's leftovers);
3. re-runs the exercise's check on the class it defined, there.

The class is used ("yours") only if its check passes; otherwise (no notebook, no exercise, the
stub, a syntax error, an exception, a failing check) the reference from helpers is, built from
the components resolved before it, with a one-line reason. Nothing here raises because of
what a learner wrote: every failure becomes a reason. It only reads files, so the committed,
complete notebook 09 gives the same table on every run.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

import helpers.checks as course_checks
from helpers import attention, positional, transformer
from helpers.checks.core import time_limit  # the checks' own timer: a cell that never ends is stopped too
from helpers.data import PAD, VOCAB, encode_pairs, reversal_pairs
from helpers.training import exact_match, train

#: MIME type of the capstone's result, read by `course progress`.
OWN_MODEL_MIME_TYPE = "application/vnd.attention-course.own-model+json"

#: Seconds one exercise cell may take to run (it only defines a class, so this is generous).
CELL_TIME_LIMIT = 10.0


@dataclass(frozen=True)
class Component:
    """An exercise class of the course: its name (= the nbgrader grade_id) and its notebook's number."""

    name: str
    notebook: str


#: In course order: each may use the ones before it.
COMPONENTS = (
    Component("MultiHeadAttention", "05"),
    Component("PositionalEncoding", "06"),
    Component("FeedForward", "07"),
    Component("EncoderLayer", "07"),
    Component("DecoderLayer", "08"),
    Component("Transformer", "09"),
)


@dataclass(frozen=True)
class Resolved:
    """The class chosen for one component: the learner's ("yours") or helpers' ("reference"), and why."""

    name: str
    cls: type
    origin: str  # "yours" or "reference"
    reason: str

    @property
    def yours(self) -> bool:
        return self.origin == "yours"


# ---- the references, built from the components resolved before them ------------------------------


def _reference(name: str, resolved: Mapping[str, type]) -> type:
    """helpers' class for `name`, with the contract's signature, made of the classes in `resolved`.

    A reference layer built around the learner's passing `MultiHeadAttention` must use it, or
    the table would call it "yours" while the model ran helpers' code: so each reference
    replaces its sub-modules by the resolved classes right after building them.
    """
    if name not in {c.name for c in COMPONENTS}:
        raise ValueError(f"no component called {name!r}; the components are {[c.name for c in COMPONENTS]}")
    if name == "MultiHeadAttention":
        class MultiHeadAttention(attention.MultiHeadAttention):
            def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
                super().__init__(d_model, num_heads, dropout=dropout)

        return MultiHeadAttention
    if name == "PositionalEncoding":
        return positional.PositionalEncoding
    if name == "FeedForward":
        return transformer.FeedForward
    mha, ff = resolved["MultiHeadAttention"], resolved["FeedForward"]
    if name == "EncoderLayer":
        class EncoderLayer(transformer.EncoderLayer):
            def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1,
                         norm_first: bool = False) -> None:
                super().__init__(d_model, num_heads, d_ff, dropout, norm_first)
                self.self_attention = mha(d_model, num_heads, dropout=dropout)
                self.feed_forward = ff(d_model, d_ff, dropout)

        return EncoderLayer
    if name == "DecoderLayer":
        class DecoderLayer(transformer.DecoderLayer):
            def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1,
                         norm_first: bool = False) -> None:
                super().__init__(d_model, num_heads, d_ff, dropout, norm_first)
                self.self_attention = mha(d_model, num_heads, dropout=dropout)
                self.cross_attention = mha(d_model, num_heads, dropout=dropout)
                self.feed_forward = ff(d_model, d_ff, dropout)

        return DecoderLayer
    return _reference_transformer(resolved["PositionalEncoding"], resolved["EncoderLayer"], resolved["DecoderLayer"])


def _reference_transformer(pe: type, encoder_layer: type, decoder_layer: type) -> type:
    class Transformer(transformer.Transformer):
        def __init__(self, src_vocab_size: int, tgt_vocab_size: int, d_model: int, num_heads: int,
                     num_layers: int, d_ff: int, dropout: float, share_embeddings: bool = False,
                     pad_id: int = PAD) -> None:
            super().__init__(src_vocab_size, tgt_vocab_size, d_model, num_heads, num_layers, d_ff, dropout,
                             share_embeddings, pad_id=pad_id)
            self.positional = pe(d_model, dropout=dropout)
            for stack, layer in ((self.encoder.layers, encoder_layer), (self.decoder.layers, decoder_layer)):
                for i in range(num_layers):
                    stack[i] = layer(d_model, num_heads, d_ff, dropout)

        def embed(self, embedding: nn.Embedding, tokens: Tensor, start: int = 0) -> Tensor:
            x = embedding(tokens) * math.sqrt(self.d_model)
            # The learner's PositionalEncoding need not take `start` (only the KV cache of 10 needs it).
            return self.positional(x) if start == 0 else self.positional(x, start)

    return Transformer


# ---- reading the learner's notebooks ---------------------------------------------------------------


def _cells(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as file:
        cells = json.load(file).get("cells", [])
    if not isinstance(cells, list):
        raise ValueError("its 'cells' is not a list")
    return [c for c in cells if isinstance(c, dict) and c.get("cell_type") == "code"]


def _source(cell: Mapping) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else str(text)


def _nbgrader(cell: Mapping) -> Mapping:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, Mapping) else {}


def _setup_imports(cells: list[dict]) -> list[str]:
    """The import statements of the notebook's setup cell (its first code cell), one by one."""
    if not cells:
        return []
    try:
        tree = ast.parse(_source(cells[0]))
    except SyntaxError:
        return []
    return [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]


@contextlib.contextmanager
def _contained() -> Iterator[None]:
    """Run a learner's cell: what it prints is dropped, warnings too, and it may take CELL_TIME_LIMIT seconds."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings(), time_limit(CELL_TIME_LIMIT):
        warnings.simplefilter("ignore")
        yield


def _run(code: str, namespace: dict, filename: str) -> None:
    with _contained():
        exec(compile(code, filename, "exec"), namespace)  # noqa: S102  # the learner's own cell, by design


def _one_line(text: str, limit: int = 110) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_reason(error: BaseException) -> str:
    if isinstance(error, SyntaxError):
        return f"its cell has a syntax error on line {error.lineno}: {error.msg}"
    return _one_line(f"its cell raised {type(error).__name__}: {error}")


def _check_name(cells: list[dict], name: str) -> str:
    """The check the notebook calls on the exercise (its check cell's `checks.check_...`), else check_<name>."""
    for cell in cells:
        if _nbgrader(cell).get("grade_id") == f"check_{name}":
            for node in ast.walk(_parse_or_empty(_source(cell))):
                if isinstance(node, ast.Attribute) and node.attr.startswith("check_"):
                    return node.attr
    return f"check_{name}"


def _parse_or_empty(code: str) -> ast.AST:
    try:
        return ast.parse(code)
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])


class _Fallback(Exception):
    """Why the learner's class cannot be used (the message is the reason shown in the table)."""


def _learners_class(component: Component, folder: Path, resolved: Mapping[str, type],
                    running: Mapping[str, str], checks: object) -> type:
    """The learner's class for `component`, run and checked in a clean namespace; `_Fallback` says why not."""
    paths = sorted(folder.glob(f"{component.notebook}_*.ipynb"))
    if not paths:
        raise _Fallback(f"no notebook {component.notebook}_*.ipynb in this folder")
    path = paths[0]
    try:
        cells = _cells(path)
    except (OSError, ValueError, AttributeError) as error:
        raise _Fallback(_one_line(f"{path.name} could not be read: {error}")) from None
    solutions = [c for c in cells if _nbgrader(c).get("solution")]
    mine = [c for c in solutions if _nbgrader(c).get("grade_id") == component.name]
    code = running.get(component.name)
    if code is None:
        if not mine:
            raise _Fallback(f"{path.name} has no {component.name} exercise")
        code = _source(mine[0])
    namespace: dict = {"__name__": f"yours_{component.notebook}", "__builtins__": builtins}
    for statement in _setup_imports(cells):
        with contextlib.suppress(Exception):
            _run(statement, namespace, f"<{path.name}: setup>")
    for cell in solutions:
        if cell not in mine:
            # Other exercises may define what this one uses; a broken one is simply left out.
            with contextlib.suppress(Exception, SystemExit):
                _run(_source(cell), namespace, f"<{path.name}: {_nbgrader(cell).get('grade_id')}>")
    namespace.update(resolved)
    try:
        _run(code, namespace, f"<{path.name}: {component.name}>")
    except (Exception, SystemExit) as error:  # whatever the learner's cell raises becomes the reason
        raise _Fallback(_error_reason(error)) from None
    cls = namespace.get(component.name)
    if not isinstance(cls, type):
        raise _Fallback(f"its cell defines no class {component.name}")
    check: Callable[[object], object] | None = getattr(checks, _check_name(cells, component.name), None)
    if check is None:
        raise _Fallback(f"this version of helpers has no check for {component.name}")
    result = check(cls)
    status = getattr(result, "status", None)
    if status is course_checks.Status.NOT_ATTEMPTED:
        raise _Fallback("not attempted yet (still the stub)")
    if not getattr(result, "passed", False):
        raise _Fallback(_one_line(f"its check fails: {getattr(result, 'summary', result)}"))
    return cls


def resolve(folder: Path | str, running: Mapping[str, str] | None = None,
            checks: object = course_checks, last: str | None = None) -> dict[str, Resolved]:
    """Every component, in course order: the learner's class from the notebooks in `folder` if it
    passes its check there, else the reference (see the module's docstring).

    `running` maps a component's name to the source of its class as it runs now (notebook 09's
    own `Transformer`, which need not be saved yet); the others come from the saved notebooks.
    `checks` holds the `check_<name>` functions (tests pass their own). `last`: stop after this
    component (notebook 14 needs only `MultiHeadAttention`, the first).
    """
    names = [c.name for c in COMPONENTS]
    if last is not None and last not in names:
        raise ValueError(f"no component called {last!r}; the components are {names}")
    folder = Path(folder)
    classes: dict[str, type] = {}
    table: dict[str, Resolved] = {}
    chosen = COMPONENTS if last is None else COMPONENTS[: names.index(last) + 1]
    for component in chosen:
        try:
            cls = _learners_class(component, folder, classes, running or {}, checks)
            table[component.name] = Resolved(component.name, cls, "yours", "its check passes")
        except _Fallback as why:
            cls = _reference(component.name, classes)
            table[component.name] = Resolved(component.name, cls, "reference", str(why))
        except Exception as error:  # the last guard: a fault of this module must not stop notebook 09 either
            cls = _reference(component.name, classes)
            table[component.name] = Resolved(component.name, cls, "reference",
                                              _one_line(f"could not be resolved: {type(error).__name__}: {error}"))
        classes[component.name] = cls
    return table


def running_source(name: str) -> str | None:
    """The source of the latest cell run in this IPython kernel that defines class `name`, or None."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    history = shell.user_ns.get("In", []) if shell is not None else []
    for code in reversed(history):
        tree = _parse_or_empty(code)
        if any(isinstance(node, ast.ClassDef) and node.name == name for node in getattr(tree, "body", [])):
            return code
    return None


def table_text(table: Mapping[str, Resolved]) -> str:
    """The table shown in notebook 09: component | from | why."""
    width = max(len(name) for name in table)
    lines = [f"{'component':<{width}}  {'from':<9}  why", f"{'-' * width}  {'-' * 9}  {'-' * 3}"]
    lines += [f"{r.name:<{width}}  {r.origin:<9}  {r.reason}" for r in table.values()]
    return "\n".join(lines)


# ---- training the learner's model ---------------------------------------------------------------


@dataclass(frozen=True)
class OwnModel:
    """What the capstone trained: the model, its exact match on held-out reversals, and whose parts it has."""

    model: nn.Module
    accuracy: float
    table: Mapping[str, Resolved]
    losses: list[float]

    def all_yours(self) -> bool:
        return all(r.yours for r in self.table.values())

    def payload(self, reached: bool) -> dict[str, object]:
        """The agreed record for `course progress`; `reached`: the accuracy met the notebook's bar."""
        return {
            "trained": self.all_yours() and reached,
            "accuracy": round(self.accuracy, 3),
            "components": {name: r.origin for name, r in self.table.items()},
        }


#: The capstone's task: reversing strings of 3 to 6 letters of a 10-letter alphabet.
TASK = dict(alphabet="abcdefghij", min_len=3, max_len=6)
SIZES = dict(d_model=32, num_heads=2, num_layers=2, d_ff=64, dropout=0.0)


def train_own_model(table: Mapping[str, Resolved], steps: int = 300, seed: int = 0) -> OwnModel:
    """Train the Transformer of `table` on reversal; every weight but the embeddings starts as the reference's.

    The reference's state_dict is copied in first (every passing class has its keys), so the
    learner's model and the reference start from the same point and only the code differs; the
    embedding table (tied to the output layer) keeps the learner's own initialisation, with
    standard deviation 1/√d_model as notebook 09 teaches and its check holds.
    """
    train_data = encode_pairs(reversal_pairs(6000, seed=5, **TASK))
    test_pairs = reversal_pairs(200, seed=6, **TASK)
    args = (len(VOCAB), len(VOCAB), *SIZES.values())
    torch.manual_seed(seed)
    start = transformer.Transformer(*args, share_embeddings=True).state_dict()
    model = table["Transformer"].cls(*args, share_embeddings=True)
    tied = ("src_embedding.weight", "tgt_embedding.weight", "output.weight")  # one Parameter: the learner's
    model.load_state_dict({k: v for k, v in start.items() if k not in tied}, strict=False)
    losses = train(model, train_data, steps=steps, batch_size=64, lr=1e-2, seed=seed, progress=False)
    accuracy = exact_match(model, test_pairs, max_len=TASK["max_len"] + 1)
    return OwnModel(model, accuracy, table, losses)
