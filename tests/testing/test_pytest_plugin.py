"""The pytest plugin, run as users run it: a real pytest subprocess over a small project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spark.cache import generate_key
from spark.testing import ProviderServer

SPARK_TOML = """
[spark]
default_profile = "testing"

[cache]
enabled = true
dir = "llm_cache"

[models.chat]
provider = "openai"
model_id = "gpt-4o"

[profiles.testing.cache]
encrypt = true
mode = "replay"
"""

TESTS = """
import asyncio
import pytest
import spark.models

QUESTION = "{question}"


def ask(question):
    return asyncio.run(spark.models.from_profile("chat").get_text(question))


def test_asks():
    assert "Answer" in ask(QUESTION)


@pytest.mark.spark_cache(mode="off")
def test_marker_turns_the_cache_off(spark_cache):
    assert spark_cache.mode == "off"
    assert ask("always live") != ""
"""


@pytest.fixture(scope="module")
def live() -> ProviderServer:
    with ProviderServer() as server:
        yield server


def make_project(root: Path, question: str = "What is Spark?") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "spark.toml").write_text(SPARK_TOML)
    (root / "test_app.py").write_text(TESTS.replace("{question}", question))
    return root


def run_pytest(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "OPENAI_"))}
    clean.update(env)
    clean.pop("ENVIRONMENT", None)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    return subprocess.run(
        command, cwd=project, env=clean, capture_output=True, text=True, timeout=120
    )


def test_record_then_replay_then_explain_a_miss(tmp_path: Path, live: ProviderServer) -> None:
    key = generate_key()
    project = make_project(tmp_path / "app")
    env = {**live.env(), "SPARK_CACHE_KEY": key}
    recorded = run_pytest(project, env, "--spark-cache=record")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert "Spark LLM cache" in recorded.stdout
    assert "1 entries recorded" in recorded.stdout
    assert (project / "llm_cache" / ".spark-last-run.json").exists()
    requests = live.count("openai")

    dead = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "unused"}
    replayed = run_pytest(project, {**dead, "SPARK_CACHE_KEY": key}, "-k", "test_asks")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert live.count("openai") == requests, "replay made no provider request"

    make_project(project, question="What is Spark, really?")
    missed = run_pytest(project, {**dead, "SPARK_CACHE_KEY": key}, "-k", "test_asks")
    assert missed.returncode == 1
    assert "CacheMissError: replay mode: no cache entry for openai/gpt-4o" in missed.stdout
    assert "messages[0].content changed (sha256:" in missed.stdout
    assert "Traceback" not in missed.stdout
    # The cache is encrypted: neither the stored question nor the test's new one is printed.
    assert "What is Spark" not in missed.stdout + missed.stderr


def test_a_record_run_with_no_room_for_its_usage_record_still_passes(
    tmp_path: Path, live: ProviderServer
) -> None:
    project = make_project(tmp_path / "app")
    (project / "llm_cache" / ".spark-last-run.json").mkdir(parents=True)  # not a file
    env = {**live.env(), "SPARK_CACHE_KEY": generate_key()}

    recorded = run_pytest(project, env, "--spark-cache=record", "-k", "test_asks")

    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert "usage not recorded: [Errno 21] Is a directory" in recorded.stdout
    assert "INTERNALERROR" not in recorded.stdout + recorded.stderr


def test_missing_key_fails_in_one_line_or_skips_on_request(
    tmp_path: Path, live: ProviderServer
) -> None:
    project = make_project(tmp_path / "app")
    failed = run_pytest(project, live.env(), "-k", "test_asks")
    assert failed.returncode == 1
    assert "EncryptionKeyError: cache encryption is on but no key was found" in failed.stdout
    assert "SPARK_CACHE_KEY" in failed.stdout
    skipped = run_pytest(project, live.env(), "-k", "test_asks", "--spark-skip-without-key")
    assert skipped.returncode == 0, skipped.stdout
    assert "1 skipped" in skipped.stdout
    by_env = run_pytest(project, {**live.env(), "SPARK_SKIP_WITHOUT_KEY": "1"}, "-k", "test_asks")
    assert "1 skipped" in by_env.stdout


def test_a_wrong_or_cut_off_key_fails_even_when_missing_keys_skip(
    tmp_path: Path, live: ProviderServer
) -> None:
    """A fork has no key (skipped); a stale secret after a rotation, or one cut when pasted,
    must fail the run, not turn the suite into skips."""
    project = make_project(tmp_path / "app")
    env = {**live.env(), "SPARK_SKIP_WITHOUT_KEY": "1"}
    recorded = run_pytest(
        project,
        {**env, "SPARK_CACHE_KEY": generate_key()},
        "--spark-cache=record",
        "-k",
        "test_asks",
    )
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr

    stale = run_pytest(project, {**env, "SPARK_CACHE_KEY": generate_key()}, "-k", "test_asks")
    assert stale.returncode == 1, stale.stdout
    assert "1 failed" in stale.stdout
    assert "DecryptionError" in stale.stdout
    cut = run_pytest(project, {**env, "SPARK_CACHE_KEY": generate_key()[:30]}, "-k", "test_asks")
    assert cut.returncode == 1, cut.stdout
    assert "is not a valid Fernet key" in cut.stdout
    unset = run_pytest(project, env, "-k", "test_asks")
    assert unset.returncode == 0, unset.stdout
    assert "1 skipped" in unset.stdout


def test_off_calls_the_provider_every_time(tmp_path: Path, live: ProviderServer) -> None:
    project = make_project(tmp_path / "app")
    before = live.count("openai")
    result = run_pytest(project, live.env(), "--spark-cache=off")
    assert result.returncode == 0, result.stdout + result.stderr
    assert live.count("openai") == before + 2
    assert not (project / "llm_cache").exists()


TWO_TESTS = """
import asyncio
import spark.models


def ask(question):
    return asyncio.run(spark.models.from_profile("chat").get_text(question))


def test_one():
    assert ask("first question")


def test_two():
    assert ask("second question")
"""


def test_a_record_run_of_part_of_the_suite_never_lets_prune_delete_the_rest(
    tmp_path: Path, live: ProviderServer
) -> None:
    """A ``-k`` run (or named paths) says nothing of the tests it did not run: its usage adds
    to the record, and a record of such runs only is refused by prune."""
    from spark.cache import CacheManager
    from spark.errors import CacheError

    env = {**live.env(), "SPARK_CACHE_KEY": generate_key()}
    project = make_project(tmp_path / "app")
    (project / "test_app.py").write_text(TWO_TESTS)
    cache = project / "llm_cache"

    first = run_pytest(project, env, "--spark-cache=record", "-k", "test_one")
    assert first.returncode == 0, first.stdout + first.stderr
    with pytest.raises(CacheError, match="part of the suite only"):
        CacheManager(cache).prune_unused()

    whole = run_pytest(project, env, "--spark-cache=record")
    assert whole.returncode == 0, whole.stdout + whole.stderr
    again = run_pytest(project, env, "--spark-cache=record", "-k", "test_two")
    assert again.returncode == 0, again.stdout + again.stderr
    named = run_pytest(project, env, "--spark-cache=record", "test_app.py::test_one")
    assert named.returncode == 0, named.stdout + named.stderr

    assert CacheManager(cache).prune_unused() == 0
    assert CacheManager(cache).get_stats()["total_entries"] == 2
