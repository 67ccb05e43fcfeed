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


def test_readme_quick_start_is_two_commands_then_the_explicit_route():
    open_, test, by_hand = quick_start_commands()
    assert open_.strip() == "./course open" and test.strip() == "./course test"
    install, *rest = by_hand.strip().splitlines()
    assert "python3 -m venv .venv" in install and "pip install" in install and "-e ." in install
    assert [line.split()[:2] for line in rest] == [["course", "open"], ["pytest", "#"]]


def pinned_torch(text: str) -> set[str]:
    return set(re.findall(r"torch==[0-9][0-9.]*", text))


def test_launchers_pin_the_torch_the_readme_pins():
    _, _, by_hand = quick_start_commands()
    [pin] = pinned_torch(by_hand)
    for launcher in ("course", "course.cmd"):
        assert pinned_torch((ROOT / launcher).read_text(encoding="utf-8")) == {pin}, launcher
    assert (ROOT / "course").stat().st_mode & 0o111, "./course is executable"


def test_ci_runs_the_readme_test_command_in_a_fresh_environment():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    _, test, _ = quick_start_commands()
    assert re.search(rf"^\s*{re.escape(test.strip())}\s*$", ci, re.M), ".ci/run runs the README's test command"
    assert "rm -rf .venv" in ci, ".ci/run starts without an environment, as a fresh clone does"


def test_floors_agree_everywhere():
    """pyproject.toml, environment.yml, the README and notebook 00 name the same oldest releases."""
    floors = {requirement_name(d): d for d in pyproject()["project"]["dependencies"]}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    conda = (ROOT / "environment.yml").read_text(encoding="utf-8")
    welcome = (ROOT / "notebooks" / "00_welcome.ipynb").read_text(encoding="utf-8")
    for name, label in [("torch", "PyTorch"), ("numpy", "NumPy"), ("matplotlib", "Matplotlib")]:
        [floor] = re.findall(r">=([0-9.]+)", floors[name])
        assert f"**{label} {floor}** or newer" in readme, label
        conda_name = "pytorch" if name == "torch" else name
        assert re.search(rf"{conda_name}(\[version=')?>={re.escape(floor)}\b", conda), label
        major, minor = floor.split(".")[:2]
        if name != "matplotlib":  # notebook 00 checks torch and NumPy
            assert f">= ({major}, {minor})" in welcome, label
    python = pyproject()["project"]["requires-python"]
    assert python == ">=3.11" and "**Python 3.11** or newer" in readme and "python>=3.11" in conda


#: The optional extra with nbgrader (README, For instructors); tests/test_nbgrader.py skips without it.
INSTRUCTOR_EXTRA = "instructor"


def test_the_extra_installs_nbgrader_and_ci_installs_the_extra():
    extras = pyproject()["project"]["optional-dependencies"]
    assert any(re.match(r"nbgrader\b", requirement) for requirement in extras[INSTRUCTOR_EXTRA])
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(rf"^export COURSE_EXTRAS={INSTRUCTOR_EXTRA}$", ci, re.M), "CI installs it: the nbgrader test runs"
    launcher = (ROOT / "course").read_text(encoding="utf-8")
    assert "COURSE_EXTRAS" in launcher and '"$here[$extras]"' in launcher
