"""The cells of a blank workbook that its exercises can change: what the suite runs of each workbook.

A blank workbook is its complete notebook with every solution replaced by a stub. Only the cells
that see a stub can behave differently from the complete notebook, which strict nbval runs already:

- the exercise cells (the stubs) and their check cells;
- the cells that *depend* on an exercise: they name one of its names (a function, a class, a
  variable it defines), or a name such a cell defines, or an exercise's name in a string
  (`helpers.yours` finds the learner's class in the kernel's history by its name). Rebinding a
  name (notebook 09's `from helpers.transformer import Transformer`) ends its dependence;
- and, so that those can run, the notebook's first code cell (its set-up) and every cell that
  defines a name they read, found the same way, back to the set-up.

Every other cell runs in the workbook exactly as in the complete notebook: the same source on the
same state, as no exercise reaches it. So the complete notebook's strict run and this path's run
of the blank workbook prove together that the whole workbook runs top to bottom, and no cell is
run twice for it. `exercise_path` picks the cells; a cell it cannot parse is always on the path.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import copy

from nbformat import NotebookNode

from helpers.course.notebooks import is_check_cell, is_solution_cell, source

_BUILTINS = frozenset(dir(builtins))


def _python(code: str) -> ast.Module | None:
    """The cell as Python (IPython's `%magic` and `!shell` lines made into calls), or None."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        tree = ast.parse(TransformerManager().transform_cell(code))
    except SyntaxError:
        return None
    # `%timeit f(x)` becomes run_line_magic("timeit", "f(x)"): the code in the string reads names too.
    for node in list(ast.walk(tree)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("run_line_magic", "run_cell_magic"):
            for argument in node.args[1:]:
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    with contextlib.suppress(SyntaxError):
                        tree.body.extend(ast.parse(argument.value).body)
    return tree


def _defined(tree: ast.Module) -> set[str]:
    """The names a cell binds at its top level (what later cells can read)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        else:
            names.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return names


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
           ast.GeneratorExp)


def _local(scope: ast.AST) -> set[str]:
    """The names a function (its parameters, what it assigns) or a comprehension (its targets) binds."""
    if isinstance(scope, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        parts: list[ast.AST] = [g.target for g in scope.generators]
    else:
        parts = [scope.args, *(scope.body if isinstance(scope.body, list) else [scope.body])]
    names = {n.arg for part in parts for n in ast.walk(part) if isinstance(n, ast.arg)}
    names |= {n.id for part in parts for n in ast.walk(part)
              if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return names - {name for n in ast.walk(scope) if isinstance(n, ast.Global) for name in n.names}


def _read(node: ast.AST, shadowed: frozenset[str] = frozenset()) -> set[str]:
    """The global names the cell reads, in its functions' bodies too (they read them when called)."""
    if isinstance(node, ast.Name):
        return {node.id} - shadowed - _BUILTINS if isinstance(node.ctx, ast.Load) else set()
    if isinstance(node, _SCOPES):
        shadowed = shadowed | _local(node)
    return set().union(*(_read(child, shadowed) for child in ast.iter_child_nodes(node)))


def _strings(tree: ast.Module) -> set[str]:
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def exercise_path(nb: NotebookNode) -> list[int]:
    """The indices of the cells of `nb` (a complete notebook or its blank workbook) whose run can differ
    between the two, with the cells they need: see the module's docstring. In notebook order."""
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    trees = {i: _python(source(nb.cells[i])) for i in code}
    exercise_names = {name for i in code if is_solution_cell(nb.cells[i]) and trees[i] for name in _defined(trees[i])}
    on_path = {i for i in code[:1]}
    dependent: set[str] = set()  # the names whose value may come from an exercise, at this point
    for i in code:
        cell, tree = nb.cells[i], trees[i]
        if tree is None or is_solution_cell(cell) or is_check_cell(cell):
            on_path.add(i)
            dependent |= _defined(tree) if tree else set()
            continue
        if _read(tree) & dependent or _strings(tree) & exercise_names:
            on_path.add(i)
            dependent |= _defined(tree)
        else:
            dependent -= _defined(tree)
    # Back from the end: each cell on the path needs the latest earlier cell that defines each name it reads.
    for i in reversed(code):
        if i not in on_path:
            continue
        wanted = _read(trees[i]) if trees[i] else set()
        for j in reversed([j for j in code if j < i]):
            if not wanted:
                break
            found = wanted & _defined(trees[j]) if trees[j] else set()
            if found:
                on_path.add(j)
                wanted -= found
    return sorted(on_path)


def path_notebook(nb: NotebookNode) -> NotebookNode:
    """A copy of `nb` with only its exercise path's code cells (markdown kept, for the cells' places)."""
    keep = set(exercise_path(nb))
    out = copy.deepcopy(nb)
    out.cells = [cell for i, cell in enumerate(nb.cells) if cell.cell_type != "code" or i in keep]
    return out
