"""A replay run writes nothing: no ``tests/llm_cache/`` where there is none (no directory, no
``.gitignore``, no ledger), and no new file in a committed one — whether a script replays
(a real subprocess, so the ledger's at-exit flush runs) or a pytest session does (``pytester``
in a git repository: ``git status`` stays clean). A miss still fails, naming what is missing."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spark.cache import generate_key
from spark.testing import ProviderServer

pytest_plugins = ["pytester"]

ASK = """
import asyncio, sys
from spark.cache import CacheConfig
from spark.models.openai import OpenAIModel

config = CacheConfig(enabled=True, dir=sys.argv[1], mode=sys.argv[2], encrypt=True)
model = OpenAIModel("gpt-4o", cache_config=config, max_retries=0)
print(asyncio.run(model.get_text("What is Spark?")))
"""


@pytest.fixture(scope="module")
def live() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


def ask(cache: Path, mode: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "OPENAI_"))}
    command = [sys.executable, "-c", ASK, str(cache), mode]
    return subprocess.run(command, env={**clean, **env}, capture_output=True, text=True, timeout=60)


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the SHA-256 of its content."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def clone(recorded: Path, to: Path) -> Path:
    """What a clone holds of a committed cache: the entries and the .gitignore, not the
    per-machine ``.spark-*`` files the .gitignore keeps out of git."""
    shutil.copytree(recorded, to, ignore=shutil.ignore_patterns(".spark-*"))
    return to


def test_a_replay_miss_creates_no_cache_directory(tmp_path: Path, live: ProviderServer) -> None:
    cache = tmp_path / "tests" / "llm_cache"
    result = ask(cache, "replay", {**live.env(), "SPARK_CACHE_KEY": generate_key()})
    assert result.returncode == 1
    assert "CacheMissError: replay mode: no cache entry for openai/gpt-4o" in result.stderr
    assert str(cache) in result.stderr
    assert live.count("openai") == 0
    assert not cache.exists(), sorted(cache.rglob("*"))
    assert not cache.parent.exists()


def test_replaying_a_committed_cache_adds_and_changes_no_file(
    tmp_path: Path, live: ProviderServer
) -> None:
    env = {**live.env(), "SPARK_CACHE_KEY": generate_key()}
    recorded = tmp_path / "recorded"
    assert ask(recorded, "read_write", env).returncode == 0
    assert (recorded / ".gitignore").exists(), "the recording wrote its .gitignore"
    committed = clone(recorded, tmp_path / "clone")
    before = snapshot(committed)
    assert any(name.endswith(".json") for name in before)
    requests = live.count("openai")

    replayed = ask(committed, "replay", env)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.startswith("Answer")
    assert live.count("openai") == requests
    assert snapshot(committed) == before


def test_a_read_only_cache_makes_no_ledger_either(tmp_path: Path, live: ProviderServer) -> None:
    env = {**live.env(), "SPARK_CACHE_KEY": generate_key()}
    cache = tmp_path / "read_only"
    assert ask(cache, "read_only", env).returncode == 0  # a miss: the provider answers
    assert not cache.exists()


def test_a_recording_run_still_keeps_its_ledger(tmp_path: Path, live: ProviderServer) -> None:
    env = {**live.env(), "SPARK_CACHE_KEY": generate_key()}
    committed = tmp_path / "cache"
    assert ask(committed, "read_write", env).returncode == 0
    assert {".gitignore", ".spark-ledger.sqlite"} <= set(snapshot(committed))


# -- a pytest session that replays, in a git repository ---------------------------------

SPARK_TOML = """
[models.chat]
provider = "openai"
model_id = "gpt-4o"
max_retries = 0

[profiles.testing.cache]
enabled = true
dir = "tests/llm_cache"
encrypt = true
mode = "replay"
"""

TEST_APP = """
import asyncio
import spark.models


def test_asks(spark_cache):
    assert spark_cache.manager().cache_dir.name == "llm_cache"
    assert asyncio.run(spark.models.from_profile("chat").get_text("What is Spark?"))
"""


def git(project: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args]
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, check=True)
    return done.stdout


def status(project: Path) -> str:
    """``git status`` of the cache's folder, ignored and untracked files included (the rest of
    the directory holds pytester's own files)."""
    return git(
        project, "status", "--porcelain", "--ignored", "--untracked-files=all", "--", "tests"
    )


@pytest.fixture
def project(
    pytester: pytest.Pytester, live: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    for name, value in live.env().items():
        monkeypatch.setenv(name, value)
    for name in ("ENVIRONMENT", "SPARK_CACHE_MODE", "SPARK_ENABLE_CACHE", "SPARK_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    pytester.makefile(".toml", spark=SPARK_TOML)
    pytester.makepyfile(test_app=TEST_APP)
    git(pytester.path, "init", "-q")
    git(pytester.path, "add", "-A")
    git(pytester.path, "commit", "-q", "-m", "app")
    return pytester


def run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def test_a_pytest_replay_miss_leaves_the_checkout_clean(project: pytest.Pytester) -> None:
    result = run(project)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["*CacheMissError: replay mode: no cache entry for openai/gpt-4o*tests/llm_cache*"]
    )
    assert not (project.path / "tests").exists()
    assert status(project.path) == ""


def test_a_pytest_replay_of_a_committed_cache_leaves_the_checkout_clean(
    project: pytest.Pytester, live: ProviderServer
) -> None:
    recorded = run(project, "--spark-cache=record")
    assert recorded.ret == 0, recorded.stdout.str()
    git(project.path, "add", "-A")
    git(project.path, "commit", "-q", "-m", "Record LLM calls")
    # A fresh clone: what git ignores (the ledger, the run record) is not in it.
    git(project.path, "clean", "-q", "-fdX", "--", "tests")
    cache = project.path / "tests" / "llm_cache"
    before = snapshot(cache)
    assert ".gitignore" in before
    assert not any(name.startswith(".spark-") for name in before)
    requests = live.count("openai")

    replayed = run(project)
    assert replayed.ret == 0, replayed.stdout.str()
    replayed.stdout.fnmatch_lines(["*tests/llm_cache: 1 hits, 0 misses, 0 entries recorded*"])
    assert live.count("openai") == requests
    assert status(project.path) == ""
    assert snapshot(cache) == before
