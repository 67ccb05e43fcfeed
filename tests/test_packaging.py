"""Install and environment files stay in step: pyproject.toml, environment.yml, README and .ci/run."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# conda-forge names that differ from PyPI's.
CONDA_TO_PYPI = {"pytorch": "torch"}
# In environment.yml only: the interpreter and pip itself.
CONDA_ONLY = {"python", "pip"}


def requirement_name(spec: str) -> str:
    return re.split(r"[\s<>=!~\[;]", spec.strip(), maxsplit=1)[0].lower()


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def conda_dependencies() -> set[str]:
    """Names under `dependencies:` in environment.yml: from conda-forge, and from PyPI in its pip section."""
    names = set()
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        match = re.match(r"^  - ([A-Za-z0-9_.\-]+)", line) or re.match(r"^      - ([A-Za-z0-9][A-Za-z0-9_.\-]*)", line)
        if match:
            names.add(CONDA_TO_PYPI.get(match.group(1).lower(), match.group(1).lower()))
    return names


def test_environment_yml_lists_the_same_packages_as_pyproject():
    wanted = {requirement_name(d) for d in pyproject()["project"]["dependencies"]}
    have = conda_dependencies() - CONDA_ONLY
    assert have == wanted, f"only in environment.yml: {have - wanted}; only in pyproject.toml: {wanted - have}"


def test_environment_yml_uses_cpu_pytorch_and_installs_the_course():
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    assert "conda-forge" in text
    assert re.search(r"pytorch.*cpu", text), "CPU build of PyTorch by default"
    assert re.search(r"^\s+- -e \.", text, re.M), "the pip section installs helpers and the course command"


def test_course_command_and_strict_nbval_are_configured():
    config = pyproject()
    assert config["project"]["scripts"]["course"] == "helpers.course.cli:main"
    addopts = config["tool"]["pytest"]["ini_options"]["addopts"]
    assert "--nbval " in addopts + " " and "--nbval-lax" not in addopts
    assert "--nbval-current-env" in addopts and "--nbval-sanitize-with" in addopts
    assert "notebooks" in config["tool"]["pytest"]["ini_options"]["testpaths"]


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", quick, re.S)


def test_readme_quick_start_has_three_steps_install_open_test():
    steps = quick_start_commands()
    assert len(steps) == 3, steps
    install, open_, test = steps
    assert "pip install" in install and "-e ." in install and "torch==" in install
    assert open_.strip().endswith("course open")
    assert test.strip() == "pytest"


def test_ci_installs_and_tests_the_way_the_readme_says():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install, _, test = quick_start_commands()
    for line in install.strip().splitlines():
        assert line.strip() in ci, f"the README's install line is not in .ci/run: {line}"
    assert re.search(r"^\s*pytest\b", ci, re.M), ".ci/run runs the README's test command"
    assert "venv" in ci, ".ci/run installs into a fresh virtual environment"
