"""The record -> commit -> CI replay -> rotate flow of docs/testing.md, end to end.

A small app and its test suite live in a real git repository under tmp_path. Its suite is
recorded against spark.testing's ProviderServer (OpenAI, Bedrock and Gemini; one streamed call,
one tool call), committed, cloned elsewhere and replayed by a real pytest subprocess with only
``ENVIRONMENT=testing`` and the key, while every provider endpoint points at a dead port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spark.cache import generate_key
from spark.cache.crypto import fingerprint
from spark.testing import ProviderServer

pytestmark = pytest.mark.slow

SPARK_TOML = """
[models.chat]
provider = "openai"
model_id = "gpt-4o"

[models.claude]
provider = "bedrock"
model_id = "anthropic.claude-3-5-sonnet-20240620-v1:0"

[models.flash]
provider = "gemini"
model_id = "gemini-2.0-flash"

[profiles.testing.cache]
enabled = true
dir = "tests/llm_cache"
encrypt = true
mode = "replay"
ttl_seconds = 0
"""

APP = '''
"""A small app that asks three providers, streams one answer and lets a model call a tool."""

import spark.models
from spark.types import ToolSpec

CAPITAL_QUESTION = "What is the capital of France?"
WEATHER = ToolSpec(
    "get_weather",
    "The current weather of a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


async def capital() -> str:
    return await spark.models.from_profile("chat").get_text(CAPITAL_QUESTION)


async def summary() -> str:
    return await spark.models.from_profile("claude").get_text(
        "Summarize the French revolution.", system_prompt="Be brief.", max_tokens=200
    )


async def translation() -> str:
    return await spark.models.from_profile("flash").get_text("Translate 'cheese' into French.")


async def story() -> list[str]:
    model = spark.models.from_profile("chat")
    return [chunk async for chunk in model.stream_text("Tell a very short story.")]


async def weather_call() -> dict:
    response = await spark.models.from_profile("claude").generate(
        "What is the weather in Paris?", tools=[WEATHER]
    )
    return response.tool_calls[0].to_dict()
'''

TESTS = '''
import asyncio
import json
import os

import app


def note(name, value):
    """Keep each answer where the outer test can compare a replay with the recording."""
    with open(os.environ["APP_ANSWERS"], "a") as out:
        out.write(json.dumps({name: value}) + "\\n")


def test_openai_answers():
    note("capital", asyncio.run(app.capital()))


def test_bedrock_answers():
    note("summary", asyncio.run(app.summary()))


def test_gemini_answers():
    note("translation", asyncio.run(app.translation()))


def test_streamed_story_comes_in_pieces():
    chunks = asyncio.run(app.story())
    assert len(chunks) > 1 and "".join(chunks)
    note("story", chunks)


def test_model_calls_the_weather_tool():
    call = asyncio.run(app.weather_call())
    assert (call["name"], call["arguments"]) == ("get_weather", {"city": "Paris"})
    note("weather", call)
'''

TEST_COUNT = 5
CACHE_DIR = "tests/llm_cache"
DEAD = "http://127.0.0.1:9"  # nothing listens on the discard port: any request would fail
DEAD_ENDPOINTS = {
    "OPENAI_BASE_URL": f"{DEAD}/v1",
    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": DEAD,
    "GOOGLE_GEMINI_BASE_URL": DEAD,
}
_AMBIENT = ("SPARK_", "OPENAI_", "AWS_", "GOOGLE_", "GEMINI_")


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """os.environ without Spark/provider settings or ENVIRONMENT, plus what one step needs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_AMBIENT)}
    env.pop("ENVIRONMENT", None)
    return {**env, **extra}


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def output(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout + done.stderr


def git(cwd: Path, *args: str) -> str:
    ident = ["-c", "user.email=t@t", "-c", "user.name=t"]
    done = run(["git", *ident, *args], cwd, clean_env({}))
    assert done.returncode == 0, output(done)
    return done.stdout


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    assert git(repo, "status", "--porcelain") == ""


def clone(repo: Path, where: Path) -> Path:
    git(repo.parent, "clone", "-q", str(repo), str(where))
    return where


def run_suite(
    project: Path, env: dict[str, str], answers: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """The app's suite as CI runs it: ENVIRONMENT=testing, ``env``, answers kept in ``answers``."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    extra = {"ENVIRONMENT": "testing", "APP_ANSWERS": str(answers), **env}
    return run(command, project, clean_env(extra))


def spark_cli(
    project: Path, key: str, *args: str, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = clean_env({"ENVIRONMENT": "testing", "SPARK_CACHE_KEY": key, **(env_extra or {})})
    return run([sys.executable, "-m", "spark", *args], project, env)


def verify(project: Path, key: str) -> None:
    """`spark cache verify --require-encrypted` passes on the committed cache."""
    done = spark_cli(project, key, "cache", "verify", "--require-encrypted", "--dir", CACHE_DIR)
    assert done.returncode == 0, output(done)
    assert f"OK: {TEST_COUNT} entries" in done.stdout


def read_answers(path: Path) -> dict[str, object]:
    answers: dict[str, object] = {}
    for line in path.read_text().splitlines():
        answers.update(json.loads(line))
    return answers


def failure_reports(stdout: str) -> list[str]:
    """The report of each failed test: the text between its ``____ name ____`` header and the
    next header or section."""
    reports: list[str] = []
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith(("____", "====")):
            if current is not None:
                reports.append("\n".join(current).strip())
            current = [] if line.startswith("____") else None
        elif current is not None:
            current.append(line)
    return reports


def cache_entries(project: Path) -> list[Path]:
    """The committed entry files (not Spark's own ``.spark-*`` bookkeeping)."""
    found = (project / CACHE_DIR).rglob("*.json")
    return sorted(p for p in found if not p.name.startswith("."))


def make_project(root: Path) -> Path:
    (root / "tests").mkdir(parents=True)
    (root / "spark.toml").write_text(SPARK_TOML)
    (root / "app.py").write_text(APP)
    (root / "tests" / "test_app.py").write_text(TESTS)
    # Spark writes tests/llm_cache/.gitignore for its .spark-* files itself (checked below and
    # in test_a_recording_run_keeps_its_bookkeeping_out_of_git).
    (root / ".gitignore").write_text("__pycache__/\n")
    (root / ".gitattributes").write_text(f"{CACHE_DIR}/** -diff linguist-generated=true\n")
    git(root, "init", "-q")
    return root


# -- the steps of docs/testing.md ---------------------------------------------------------------


def record_and_commit(repo: Path, server: ProviderServer, key: str, answers: Path) -> None:
    """Record against the local server (the tool call scripted), check the entries are sealed,
    commit them."""
    server.queue_tool_call("get_weather", {"city": "Paris"}, provider="bedrock")
    done = run_suite(
        repo, {**server.env(), "SPARK_CACHE_KEY": key}, answers, "--spark-cache=record"
    )
    assert done.returncode == 0, output(done)
    assert f"{TEST_COUNT} passed" in done.stdout
    assert f"0 hits, {TEST_COUNT} misses, {TEST_COUNT} entries recorded" in done.stdout
    per_provider = {p: server.count(p) for p in ("openai", "bedrock", "gemini")}
    assert per_provider == {"openai": 2, "bedrock": 2, "gemini": 1}
    entries = cache_entries(repo)
    assert len(entries) == TEST_COUNT
    for entry in entries:  # sealed: neither a prompt nor an answer is readable in git
        assert b"France" not in entry.read_bytes()
        assert b"Paris" not in entry.read_bytes()
    commit(repo, "Record LLM calls")
    tracked = git(repo, "ls-files", CACHE_DIR).split()
    assert not [path for path in tracked if "/.spark-" in path], tracked


def refresh_changes_nothing(repo: Path, server: ProviderServer, key: str, answers: Path) -> None:
    """Re-record every call: the server answers alike, so no file is rewritten."""
    server.queue_tool_call("get_weather", {"city": "Paris"}, provider="bedrock")
    before = server.count()
    env = {**server.env(), "SPARK_CACHE_KEY": key}
    done = run_suite(repo, env, answers.with_suffix(".refresh"), "--spark-cache=refresh")
    assert done.returncode == 0, output(done)
    assert server.count() == before + TEST_COUNT, "refresh asks every question again"
    assert f"{TEST_COUNT} misses, 0 entries recorded" in done.stdout
    assert read_answers(answers.with_suffix(".refresh")) == read_answers(answers)
    assert git(repo, "status", "--porcelain") == "", "a re-record of the same answers"


def replay_passes(project: Path, key: str, answers: Path, recorded: Path) -> None:
    """Replay with only the key: every test passes with the recorded answers, git sees nothing."""
    done = run_suite(project, {**DEAD_ENDPOINTS, "SPARK_CACHE_KEY": key}, answers)
    assert done.returncode == 0, output(done)
    assert f"{TEST_COUNT} passed" in done.stdout
    assert f"{TEST_COUNT} hits, 0 misses, 0 entries recorded" in done.stdout
    assert read_answers(answers) == read_answers(recorded)
    assert git(project, "status", "--porcelain") == "", "a replay rewrites nothing"


def changed_prompt_fails_with_the_explanation(project: Path, key: str, tmp: Path) -> None:
    app = project / "app.py"
    app.write_text(app.read_text().replace("capital of France?", "capital of Spain?"))
    done = run_suite(project, {**DEAD_ENDPOINTS, "SPARK_CACHE_KEY": key}, tmp / "missed")
    git(project, "checkout", "--", "app.py")
    assert done.returncode == 1, output(done)
    assert f"1 failed, {TEST_COUNT - 1} passed" in done.stdout
    [report] = failure_reports(done.stdout)
    assert report.startswith("CacheMissError: replay mode: no cache entry for openai/gpt-4o")
    assert "Nearest stored entry:" in report
    assert "messages[0].content changed" in report
    assert "pytest --spark-cache=record" in report
    assert "Traceback" not in done.stdout


def missing_key_fails_in_one_line(project: Path, tmp: Path) -> None:
    done = run_suite(project, DEAD_ENDPOINTS, tmp / "keyless")
    assert done.returncode == 1, output(done)
    assert f"{TEST_COUNT} failed" in done.stdout
    reports = failure_reports(done.stdout)
    assert len(reports) == TEST_COUNT, done.stdout
    for report in reports:
        assert "\n" not in report, report
        assert report.startswith("EncryptionKeyError: cache encryption is on but no key was found")
        assert "SPARK_CACHE_KEY" in report


def rotate_and_commit(repo: Path, old_key: str, new_key: str) -> None:
    """`spark cache rotate-key` re-seals every entry (and nothing else), says what to store;
    the chosen new key comes from a variable, never from the command line."""
    rotate = ("cache", "rotate-key", "--new-key-env", "NEW_CACHE_KEY", "--yes", "--dir", CACHE_DIR)
    done = spark_cli(repo, old_key, *rotate, env_extra={"NEW_CACHE_KEY": new_key})
    assert done.returncode == 0, output(done)
    assert "warning" not in done.stderr
    assert f"SPARK_CACHE_KEY={new_key},{old_key}" in done.stdout
    assert f"{TEST_COUNT} re-encrypted" in done.stdout
    assert f"To retire the old key(s) {fingerprint(old_key)}" in done.stdout
    assert "drop them from SPARK_CACHE_KEY, keeping only the first key" in done.stdout
    changed = sorted(line.split()[-1] for line in git(repo, "status", "--porcelain").splitlines())
    assert changed == [str(e.relative_to(repo)) for e in cache_entries(repo)]
    commit(repo, "Rotate the cache key")


def old_key_alone_fails(project: Path, old_key: str, tmp: Path) -> None:
    done = run_suite(project, {**DEAD_ENDPOINTS, "SPARK_CACHE_KEY": old_key}, tmp / "old")
    assert done.returncode == 1, output(done)
    reports = failure_reports(done.stdout)
    assert len(reports) == TEST_COUNT, done.stdout
    for report in reports:
        assert report.startswith("DecryptionError: replay: cannot decrypt cache entry"), report


def test_record_commit_replay_in_a_clone_then_rotate_the_key(tmp_path: Path) -> None:
    """Record -> commit -> clone -> offline replay -> miss / no key -> rotate -> replay."""
    old_key, new_key = generate_key(), generate_key()
    repo = make_project(tmp_path / "repo")
    notes = tmp_path / "answers"  # what each run of the app's suite answered, one file per run
    notes.mkdir()
    recorded = notes / "recorded.jsonl"
    with ProviderServer() as server:
        record_and_commit(repo, server, old_key, recorded)
        verify(repo, old_key)
        refresh_changes_nothing(repo, server, old_key, recorded)
        ci = clone(repo, tmp_path / "ci")
        requests = server.count()
        replay_passes(ci, old_key, notes / "ci.jsonl", recorded)
        assert server.count() == requests, "replay made no provider request"
    # The server is gone: nothing below can reach a provider.
    changed_prompt_fails_with_the_explanation(ci, old_key, notes)
    missing_key_fails_in_one_line(ci, notes)

    rotate_and_commit(repo, old_key, new_key)
    ci2 = clone(repo, tmp_path / "ci2")
    verify(ci2, new_key)
    replay_passes(ci2, new_key, notes / "ci2.jsonl", recorded)
    old_key_alone_fails(ci2, old_key, notes)


# Fault injection for the test below: the disk stalls while Spark writes its .gitignore, and the
# run ends during the stall. This once left the .gitignore empty or missing in about one run of
# four: the at-exit ledger flush did not wait for the one its thread had under way.
STALLED_GITIGNORE = """
import pathlib
import threading
import time

WRITING = threading.Event()
_write_text = pathlib.Path.write_text


def stalling_write_text(self, *args, **kwargs):
    if self.name.startswith(".gitignore"):  # the file or the temp file it is renamed from
        WRITING.set()
        time.sleep(10)
    return _write_text(self, *args, **kwargs)


pathlib.Path.write_text = stalling_write_text


def pytest_sessionfinish():
    WRITING.wait(timeout=10)
"""

ONE_CALL = """
import asyncio

import spark.models


def test_asks():
    assert asyncio.run(spark.models.from_profile("chat").get_text("What is Spark?"))
"""


def test_a_recording_run_keeps_its_bookkeeping_out_of_git(tmp_path: Path) -> None:
    """docs/testing.md: Spark writes tests/llm_cache/.gitignore to keep .spark-* out of git."""
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "spark.toml").write_text(SPARK_TOML)
    (repo / "tests" / "test_app.py").write_text(ONE_CALL)
    (repo / "tests" / "conftest.py").write_text(STALLED_GITIGNORE)
    git(repo, "init", "-q")
    with ProviderServer() as server:
        env = {**server.env(), "SPARK_CACHE_KEY": generate_key()}
        done = run_suite(repo, env, tmp_path / "answers", "--spark-cache=record")
    assert done.returncode == 0, output(done)
    assert (repo / CACHE_DIR / ".spark-last-run.json").exists()
    git(repo, "add", CACHE_DIR)
    tracked = git(repo, "ls-files", CACHE_DIR).split()
    assert [path for path in tracked if "/.spark-" in path] == []
    assert (repo / CACHE_DIR / ".spark-ledger.sqlite").exists(), "the run's miss was counted"
