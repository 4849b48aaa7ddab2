"""Isolation for the config tests: no ENVIRONMENT, no SPARK_*, a private HOME and CWD."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

WriteFile = Callable[..., Path]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Clear ENVIRONMENT and every SPARK_* variable; HOME and the CWD are fresh directories."""
    for name in list(os.environ):
        if name.startswith("SPARK_") or name in ("ENVIRONMENT", "XDG_CACHE_HOME"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    monkeypatch.chdir(elsewhere)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The directory that holds the test's spark.toml."""
    directory = tmp_path / "project"
    directory.mkdir()
    return directory


@pytest.fixture
def write(project: Path) -> WriteFile:
    """Write a (dedented) TOML file under the project directory and return its path."""

    def write_file(text: str, name: str = "spark.toml") -> Path:
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write_file
