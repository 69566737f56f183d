"""The code stays ruff-clean, ruff-formatted and mypy-clean (strict), checked with the tests."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.support import REPO


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, check=False
    )


def test_ruff_finds_no_problems() -> None:
    result = _run("ruff", "check", "bot", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_formatted_by_ruff() -> None:
    result = _run("ruff", "format", "--check", "bot", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_no_type_errors() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_packages_import_only_downwards() -> None:
    """The import contract in pyproject.toml (`[tool.importlinter]`): every room (package or
    top-level module) imports only the rooms below it, so no import cycle between them."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_test_module_imports_another() -> None:
    """Shared test code lives in helper modules (tests/support.py, tests/servers/, ...): a test
    module that imports another runs that one's fixtures and couples their fates."""
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            if any(name.split(".")[-1].startswith("test_") for name in names):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


def _room(module: str) -> str:
    """The package a module belongs to: `bot.tickets.service` -> `bot.tickets`; a top-level
    module (`bot.gate`) is a room of its own; `tests...` and `benchmarks...` are one room each."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "bot" else parts[0]


def _declared_public(path: Path) -> set[str] | None:
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return None


def test_modules_import_from_other_packages_only_the_names_those_declare_public() -> None:
    """A module's `__all__` is its public interface: every module another package (or a test,
    or a benchmark) imports from declares one, and they import only those names, never a
    private one, so a module can change what it keeps to itself without breaking anyone."""
    public: dict[str, set[str] | None] = {}
    for path in (REPO / "bot").rglob("*.py"):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        public[module] = _declared_public(path)
    offenders = []
    for directory in ("bot", "tests", "benchmarks"):
        for path in sorted((REPO / directory).rglob("*.py")):
            importer = ".".join(path.relative_to(REPO).with_suffix("").parts)
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.ImportFrom) or node.level or node.module is None:
                    continue
                if node.module not in public or _room(node.module) == _room(importer):
                    continue
                declared = public[node.module]
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in public:
                        continue  # a submodule
                    if declared is None or alias.name not in declared:
                        offenders.append(
                            f"{path.relative_to(REPO)}:{node.lineno} {node.module}.{alias.name}"
                        )
    assert offenders == [], "add the name to the module's __all__ (or do not import it)"
