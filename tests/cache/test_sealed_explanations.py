"""What an encrypted cache holds stays sealed in every explanation (docs/testing.md).

One ENCRYPTED entry is recorded with the real OpenAI SDK against spark.testing's ProviderServer,
its request full of marker strings: the system prompt, every message (a tool call's arguments
and a tool result too), tool names, descriptions and JSON-schema property names, the response
format's schema, a stop sequence, and the answer (a tool call whose arguments carry a marker).
Then the request is changed everywhere and explained every way Spark explains a miss or a hit:
the ``CacheMissError`` of replay mode, the pytest plugin in a real pytest subprocess,
``spark cache explain`` (in-process and as a subprocess, text and ``--json``) and the logs of
``spark`` at DEBUG. No marker may appear in anything printed or logged, and each differing field
is still named. A plaintext cache keeps its value detail; ``--show-values`` shows the text.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from spark.cache import CacheConfig, CacheManager, generate_key
from spark.cache.crypto import fingerprint
from spark.cli import cli
from spark.errors import CacheMissError, DecryptionError
from spark.models.openai import OpenAIModel
from spark.testing import ProviderServer

# Every secret text below holds MARK. Q, Z and X are no hex digits: no digest contains it (a
# Fernet token's base64 may, by chance: ``plain_part`` leaves the token out).
MARK = "QZX"
ANSWER_MARK = "QZX-answer-value"
_TOKEN = re.compile(rb'"payload":"[A-Za-z0-9_=-]+"')


def plain_part(entry: bytes) -> bytes:
    """An entry file's bytes but its payload's Fernet token (random base64), if it has one."""
    return _TOKEN.sub(b'"payload":""', entry)


SCHEMA_TOOL = {
    "type": "object",
    "properties": {"QZX_customer_id": {"type": "string", "description": "QZX-prop-desc"}},
    "required": ["QZX_customer_id"],
}


def recorded_call() -> dict[str, Any]:
    """The arguments of the recorded ``generate`` call (OpenAI spellings, as users write)."""
    return {
        "messages": [
            {"role": "user", "content": "QZX-msg0 look up ACME's biggest customer"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "QZX_crm_lookup",
                            "arguments": json.dumps({"QZX_arg_key": "QZX-arg-value"}),
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "QZX-tool-result revenue 12M"},
            {"role": "user", "content": "QZX-msg3 summarize it for the board"},
        ],
        "system_prompt": "QZX-system you are ACME's internal CRM assistant",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "QZX_crm_lookup",
                    "description": "QZX-desc0 internal CRM for ACME",
                    "parameters": SCHEMA_TOOL,
                },
            },
            {
                "name": "QZX_send_mail",
                "description": "QZX-desc1 mail the board",
                "parameters": {
                    "type": "object",
                    "properties": {"QZX_to": {"type": "string", "enum": ["QZX-enum-value"]}},
                },
            },
        ],
        "tool_choice": "QZX_crm_lookup",
        "temperature": 0.7,
        "seed": 7,
        "stop": ["QZX-stop"],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "QZX_report",
                "schema": {"type": "object", "properties": {"QZX_summary": {"type": "string"}}},
            },
        },
    }


def changed_call() -> dict[str, Any]:
    """The recorded call changed in every field (with new secret text of its own)."""
    call = copy.deepcopy(recorded_call())
    call["system_prompt"] = "QZX-system-v2 you are ACME's CRM assistant"
    messages, tools = call["messages"], call["tools"]
    messages[0]["content"] = "QZX-msg0-v2 look up ACME's second customer"
    messages[1]["tool_calls"][0]["function"]["arguments"] = json.dumps({"QZX_arg_key": "QZX-v2"})
    messages.append({"role": "user", "content": "QZX-msg4 and one more thing"})
    tools[0]["function"]["description"] = "QZX-desc0-v2 internal CRM"
    tools[1]["parameters"]["properties"] = {"QZX_recipient": {"type": "string"}}
    tools.append({"name": "QZX_new_tool", "description": "QZX-desc2", "parameters": SCHEMA_TOOL})
    call["response_format"]["json_schema"]["schema"]["properties"] = {"QZX_summary_v2": {}}
    call["temperature"] = 0.2
    del call["seed"]
    call["stop"] = ["QZX-stop-v2"]
    call["tool_choice"] = "auto"
    return call


# The differences of changed_call() from recorded_call(), as a sealed explanation names them.
NAMED = [
    "body.messages[0].content changed (sha256:",  # the system text: the first message
    "body.messages[1].content changed (sha256:",
    "body.messages[2].tool_calls[0].function.arguments changed (sha256:",
    "body.messages[5] added (sha256:",
    "body.tools[0].function.description changed (sha256:",
    "body.tools[1].function.parameters changed (sha256:",
    "body.tools[2] added (sha256:",
    "body.response_format.json_schema.schema changed (sha256:",
    "body.temperature: 0.7 -> 0.2",
    "body.seed removed (was 7)",
    "body.stop changed (sha256:",
    "body.tool_choice changed (sha256:",
]

SPARK_TOML = """
[cache]
enabled = true
dir = "llm_cache"
encrypt = {encrypt}

[models.chat]
provider = "openai"
model_id = "gpt-4o"
"""


def assert_sealed(text: str) -> None:
    """No marker in ``text`` (any case): the lines that hold one are in the failure."""
    leaks = [line for line in text.splitlines() if MARK.lower() in line.lower()]
    assert not leaks, "sealed text leaked:\n" + "\n".join(leaks)


def assert_named(text: str) -> None:
    missing = [name for name in NAMED if name not in text]
    assert not missing, f"fields not named: {missing}\n{text}"


@dataclass(frozen=True)
class Recorded:
    """A project whose cache holds one recorded entry (encrypted unless said otherwise)."""

    project: Path
    cache_dir: Path
    key: str
    server: ProviderServer
    make: Callable[..., OpenAIModel]


@pytest.fixture
async def recorded(
    server: ProviderServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Recorded]:
    """Record recorded_call() once with the real SDK; logging of ``spark`` at DEBUG from here."""
    caplog.set_level(logging.DEBUG, logger="spark")
    encrypt = getattr(request, "param", True)
    key = generate_key()
    monkeypatch.setenv("SPARK_CACHE_KEY", key)
    project = tmp_path / "project"
    project.mkdir()
    (project / "spark.toml").write_text(SPARK_TOML.format(encrypt=str(encrypt).lower()))
    monkeypatch.chdir(project)
    cache_dir = project / "llm_cache"
    built: list[OpenAIModel] = []

    def make(**config: Any) -> OpenAIModel:
        cache = CacheConfig(enabled=True, cache_dir=cache_dir, encrypt=encrypt, **config)
        model = OpenAIModel(
            "gpt-4o",
            api_key="sk-test",
            base_url=server.openai_base_url,
            max_retries=0,
            cache_config=cache,
        )
        built.append(model)
        return model

    server.queue_tool_call("QZX_crm_lookup", {"QZX_answer_key": ANSWER_MARK})
    answer = await make().generate(**recorded_call())
    assert answer.tool_calls[0].arguments == {"QZX_answer_key": ANSWER_MARK}
    [entry] = cache_dir.rglob("*.json")
    assert (b'"encryption":"fernet"' in entry.read_bytes()) is encrypt
    assert (MARK.encode() in plain_part(entry.read_bytes())) is not encrypt
    yield Recorded(project, cache_dir, key, server, make)
    for model in built:
        await model.aclose()


def spark_cli(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


# -- the Python API: the error of a replay-mode miss ---------------------------------------------


async def test_a_replay_miss_names_every_field_and_shows_no_sealed_text(
    recorded: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    requests = recorded.server.count("openai")
    model = recorded.make(mode="replay")
    assert (await model.generate(**recorded_call())).cached  # the recorded call replays
    with pytest.raises(CacheMissError) as info:
        await model.generate(**changed_call())
    call = changed_call()
    messages = call.pop("messages")
    with pytest.raises(CacheMissError) as streamed:
        async for _ in model.stream_text(messages, **call):
            pass
    assert recorded.server.count("openai") == requests, "replay asked no provider"
    error = info.value
    message = str(error)
    assert message == str(streamed.value)
    assert "replay mode: no cache entry for openai/gpt-4o" in message
    assert_named(message)
    assert "The entry is encrypted" in message
    assert "spark cache explain --model ALIAS REQUEST --show-values" in message
    assert_sealed("\n".join([message, repr(error), *map(str, error.args), caplog.text]))


async def test_a_sealed_entry_stays_sealed_in_a_cache_that_does_not_encrypt(
    recorded: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    """A reader that holds the key but does not encrypt: the entry itself is sealed."""
    config = CacheConfig(enabled=True, cache_dir=recorded.cache_dir, mode="replay")
    bound = CacheManager.get_instance(recorded.cache_dir).bind(config)
    call = changed_call()
    messages = call.pop("messages")
    with pytest.raises(CacheMissError) as info:
        await bound.get_or_call(bound.chat_request("openai", "gpt-4o", messages, **call), _no_call)
    assert_named(str(info.value))
    assert_sealed(str(info.value) + caplog.text)


async def test_warnings_and_key_errors_show_no_sealed_text(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())  # a key that cannot open the entry
    answer = await recorded.make(mode="read_only").generate(**recorded_call())
    assert not answer.cached
    assert "cannot be read" in caplog.text, "the warning of an entry under another key"
    with pytest.raises(DecryptionError) as info:
        await recorded.make(mode="replay").generate(**recorded_call())
    assert "cannot decrypt cache entry" in str(info.value)
    assert_sealed(str(info.value) + caplog.text)


async def _no_call() -> dict[str, Any]:
    raise AssertionError("replay never calls the provider")


@pytest.mark.parametrize("recorded", [False], indirect=True)
async def test_a_plaintext_cache_keeps_the_value_detail(recorded: Recorded) -> None:
    with pytest.raises(CacheMissError) as info:
        await recorded.make(mode="replay").generate(**changed_call())
    message = str(info.value)
    assert (
        'body.tools[0].function.description: "QZX-desc0 internal CRM for ACME" -> "QZX-desc0-v2'
        in message
    )
    assert 'body.stop[0]: "QZX-stop" -> "QZX-stop-v2"' in message
    assert "body.tools[1].function.parameters.properties.QZX_recipient added" in message
    assert "body.temperature: 0.7 -> 0.2" in message
    assert "sha256:" not in message
    assert "The entry is encrypted" not in message


# -- spark cache explain -------------------------------------------------------------------------


def test_spark_cache_explain_shows_no_sealed_text(
    recorded: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    request_file = recorded.project / "changed.json"
    request_file.write_text(json.dumps(changed_call()))
    miss = spark_cli("cache", "explain", "--model", "chat", f"@{request_file}")
    assert miss.exit_code == 1
    assert_named(miss.stdout)
    assert_sealed(miss.output)

    as_json = spark_cli(
        "cache", "explain", "--model", "chat", "-", "--json", input=json.dumps(changed_call())
    )
    assert as_json.exit_code == 1
    assert_sealed(as_json.output)
    body = json.loads(as_json.stdout)
    assert (body["hit"], body["values_shown"], body["nearest"]["sealed"]) == (False, False, True)
    assert_named("\n".join(body["nearest"]["differences"]))
    assert_named(body["explanation"])

    hit = spark_cli("cache", "explain", "--model", "chat", json.dumps(recorded_call()))
    assert hit.exit_code == 0, hit.output
    assert hit.stdout.startswith("HIT: ")
    assert f"fingerprint {fingerprint(recorded.key)}" in hit.stdout
    assert "encryption  fernet" in hit.stdout
    assert "not shown (--show-values prints it)" in hit.stdout
    assert_sealed(hit.output)
    hit_json = spark_cli(
        "cache", "explain", "--model", "chat", "--json", json.dumps(recorded_call())
    )
    assert_sealed(hit_json.output)
    entry = json.loads(hit_json.stdout)
    assert (entry["hit"], entry["response"]) == (True, None)
    assert entry["entry"]["key_fingerprint"] == fingerprint(recorded.key)
    assert entry["entry"]["encryption"] == "fernet"
    assert_sealed(caplog.text)


def test_spark_cache_explain_as_a_process_shows_no_sealed_text(recorded: Recorded) -> None:
    (recorded.project / "changed.json").write_text(json.dumps(changed_call()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "OPENAI_"))}
    env["SPARK_CACHE_KEY"] = recorded.key
    result = subprocess.run(
        [sys.executable, "-m", "spark", "cache", "explain", "--model", "chat", "@changed.json"],
        cwd=recorded.project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert_named(result.stdout)
    assert_sealed(result.stdout + result.stderr)


def test_show_values_opts_in_to_the_text(recorded: Recorded) -> None:
    miss = spark_cli(
        "cache", "explain", "--model", "chat", "--show-values", json.dumps(changed_call())
    )
    assert miss.exit_code == 1
    assert (
        'body.tools[0].function.description: "QZX-desc0 internal CRM for ACME" -> "QZX-desc0-v2'
        in miss.stdout
    )
    assert "sha256:" not in miss.stdout
    assert "--show-values prints the text of encrypted cache entries" in miss.stderr
    hit = spark_cli(
        "cache", "explain", "--model", "chat", "--show-values", json.dumps(recorded_call())
    )
    assert hit.exit_code == 0
    assert ANSWER_MARK in hit.stdout
    hit_json = spark_cli(
        "cache",
        "explain",
        "--model",
        "chat",
        "--show-values",
        "--json",
        json.dumps(recorded_call()),
    )
    body = json.loads(hit_json.stdout)
    assert body["values_shown"] is True
    assert body["response"]["tool_calls"][0]["arguments"] == {"QZX_answer_key": ANSWER_MARK}


# -- the pytest plugin ---------------------------------------------------------------------------

PROJECT_TESTS = """
import asyncio

import spark.models

RECORDED = __RECORDED__
CHANGED = __CHANGED__


async def generate(call):
    model = spark.models.from_profile("chat")
    try:
        return await model.generate(**call)
    finally:
        await model.aclose()


def test_recorded_request():
    assert asyncio.run(generate(RECORDED)).tool_calls


def test_changed_request():
    asyncio.run(generate(CHANGED))


def test_changed_request_in_a_task_group():
    async def run():
        async with asyncio.TaskGroup() as group:
            group.create_task(generate(CHANGED))

    asyncio.run(run())
"""


def run_pytest(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "OPENAI_"))}
    clean.pop("ENVIRONMENT", None)
    clean.update(env)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return subprocess.run(
        command, cwd=project, env=clean, capture_output=True, text=True, timeout=180
    )


def test_the_pytest_plugin_reports_misses_sealed(tmp_path: Path, server: ProviderServer) -> None:
    project = tmp_path / "app"
    project.mkdir()
    (project / "spark.toml").write_text(SPARK_TOML.format(encrypt="true"))
    tests = PROJECT_TESTS.replace("__RECORDED__", repr(recorded_call()))
    (project / "test_app.py").write_text(tests.replace("__CHANGED__", repr(changed_call())))
    key = generate_key()
    server.queue_tool_call("QZX_crm_lookup", {"QZX_answer_key": ANSWER_MARK})
    recording = run_pytest(
        project,
        {**server.env(), "SPARK_CACHE_KEY": key},
        "-q",
        "--spark-cache=record",
        "-k",
        "test_recorded_request",
    )
    assert recording.returncode == 0, recording.stdout + recording.stderr
    [entry] = (project / "llm_cache" / "openai").rglob("*.json")
    assert MARK.encode() not in plain_part(entry.read_bytes())

    dead = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "unused"}
    replay = run_pytest(
        project,
        {**dead, "SPARK_CACHE_KEY": key},
        "--spark-cache=replay",
        "-v",
        "-rA",
        "--showlocals",
        "--log-level=DEBUG",
    )
    output = replay.stdout + replay.stderr
    assert replay.returncode == 1, output
    assert "2 failed, 1 passed" in replay.stdout
    # (the failure reports, not pytest's short summary, which CI prints untruncated)
    reports = replay.stdout.split("short test summary info")[0]
    assert reports.count("CacheMissError: replay mode: no cache entry") == 2
    assert "(raised inside ExceptionGroup" in replay.stdout
    assert_named(replay.stdout)
    assert "Spark LLM cache" in replay.stdout
    assert "Traceback" not in output
    assert_sealed(output)
