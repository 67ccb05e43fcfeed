"""The tooling wing: the machinery behind the `course` command. No notebook imports it.

- `helpers.course.cli`: the `course` command and its subcommands.
- `helpers.course.notebooks`: finding, reading and executing the course's notebooks (one kernel at a time).
- `helpers.course.files`: the one atomic file writer (files keep the user's normal permissions).
- `helpers.course.workbook`: blank student workbooks (`course workbook`).
- `helpers.course.progress`: running workbooks and tabulating their checks (`course progress`).
- `helpers.course.exercise_path`: which cells of a workbook a stub can reach (what the suite runs of it).
- `helpers.course.slides`: offline reveal.js decks (`course slides`); the page template is
  `slides_template.html.j2` beside it.
- `helpers.course.bench`: the performance benchmark (`course bench`).
- `helpers.course.pytest_plugin`: how `pytest` spreads the notebooks over the cores (loaded by addopts).

`./course` (`course.cmd` on Windows) at the course's root is the launcher: it sets up `.venv` on
first use, then runs this command (`./course open`, `./course test`).
"""

import sys

# jsonschema (under nbformat) imports rfc3987_syntax when it is installed (jupyter-events pulls it in),
# and that builds a grammar parser at import: two seconds of every `course` command and every test
# process, for IRI format checks that no notebook schema asks for. Without it jsonschema skips them.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

