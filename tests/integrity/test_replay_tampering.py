"""An encrypted cache recorded in read_write, tampered with, then used in replay: every tampered
entry is a clear ``SparkError`` naming its file (never an answer, never a provider call), and
``spark cache verify`` lists each one. ``encrypt = true`` means sealed entries only, in the
memory tier too."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _fuzzlib import (
    GPT,
    KEY_ENV,
    OTHER_KEY_ENV,
    TOOL_ARGUMENTS,
    WEATHER,
    entry_path,
    injected_answer,
    names_path,
    plant,
    verify_named,
)

from spark.cache import CacheConfig, CacheManager, generate_key
from spark.cache.crypto import fingerprint
from spark.errors import CacheError, CacheMissError, DecryptionError, SparkError
from spark.testing import ProviderServer

Cli = Callable[..., Any]
MakeModel = Callable[..., Any]

QUESTIONS = [f"replay question {n}" for n in range(7)]


def _path(config: CacheConfig, model: Any, prompt: str, **params: Any) -> Path:
    return entry_path(config.resolved_dir, "openai", GPT, model.cache_key(prompt, **params))


@pytest.fixture
async def recorded(
    sealed_config: CacheConfig, models: MakeModel, server: ProviderServer
) -> dict[str, Path]:
    """Seven answers (one a tool call) recorded through OpenAIModel into the encrypted cache;
    prompt -> entry path."""
    model = models("openai", sealed_config, GPT)
    paths = {}
    for prompt in QUESTIONS:
        params: dict[str, Any] = {}
        if prompt.endswith("6"):
            server.queue_tool_call("get_weather", TOOL_ARGUMENTS, provider="openai")
            params = {"tools": [WEATHER]}
        await model.generate(prompt, **params)
        paths[prompt] = _path(sealed_config, model, prompt, **params)
        assert paths[prompt].is_file()
    CacheManager.reset_instances()
    server.reset()
    return paths


def _edit_token(path: Path) -> None:
    envelope = json.loads(path.read_bytes())
    token = envelope["payload"]
    at = len(token) // 2
    envelope["payload"] = token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]
    path.write_bytes(json.dumps(envelope, separators=(",", ":")).encode())


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:150])


def _swap(first: Path, second: Path) -> None:
    held = first.read_bytes()
    first.write_bytes(second.read_bytes())
    second.write_bytes(held)


async def _plaintext_for(
    tmp_path: Path, sealed_config: CacheConfig, prompt: str, path: Path
) -> None:
    """Put a plaintext entry for ``prompt`` (with an injected answer) at ``path``."""
    plain = CacheConfig(enabled=True, cache_dir=tmp_path / "plain-source")
    manager = CacheManager(plain.resolved_dir, plain)
    request = manager.bind(plain).chat_request("openai", GPT, prompt)
    path.write_bytes(await plant(plain, request, injected_answer(request, "plaintext")))


async def _foreign_for(foreign_config: CacheConfig, prompt: str, path: Path) -> None:
    """Put an entry sealed with a key the cache does not hold at ``path``."""
    manager = CacheManager(foreign_config.resolved_dir, foreign_config)
    request = manager.bind(foreign_config).chat_request("openai", GPT, prompt)
    path.write_bytes(await plant(foreign_config, request, injected_answer(request, "foreign")))


async def _replay(model: Any, prompt: str) -> SparkError:
    with pytest.raises(SparkError) as raised:
        await model.generate(prompt)
    return raised.value


def _assert_clear(error: SparkError, path: Path) -> None:
    assert isinstance(error, CacheError)  # CacheMissError, DecryptionError or CacheError
    assert names_path(str(error), path), f"does not name {path}: {error}"
    assert "INJECTED" not in str(error)


@pytest.mark.parametrize(
    "tamper", ["edited ciphertext", "truncated", "swapped", "injected plaintext", "key not held"]
)
async def test_replay_refuses_a_tampered_entry_naming_its_file(
    tamper: str,
    recorded: dict[str, Path],
    sealed_config: CacheConfig,
    foreign_config: CacheConfig,
    keys: dict[str, str],
    models: MakeModel,
    server: ProviderServer,
    tmp_path: Path,
) -> None:
    first, second = QUESTIONS[0], QUESTIONS[1]
    path = recorded[first]
    if tamper == "edited ciphertext":
        _edit_token(path)
    elif tamper == "truncated":
        _truncate(path)
    elif tamper == "swapped":
        _swap(path, recorded[second])
    elif tamper == "injected plaintext":
        await _plaintext_for(tmp_path, sealed_config, first, path)
    else:
        await _foreign_for(foreign_config, first, path)
    replay = models("openai", replace(sealed_config, mode="replay"), GPT)

    error = await _replay(replay, first)

    _assert_clear(error, path)
    if tamper == "injected plaintext":
        assert "spark cache rotate-key" in str(error)
    if tamper == "key not held":
        assert isinstance(error, DecryptionError)
        assert fingerprint(keys[OTHER_KEY_ENV]) in str(error)
    if tamper == "swapped":
        _assert_clear(await _replay(replay, second), recorded[second])
    # the entries nobody touched still replay
    assert (await replay.generate(QUESTIONS[2])).cached
    assert server.count() == 0


async def test_replay_through_the_engine_names_the_file_too(
    recorded: dict[str, Path], sealed_config: CacheConfig
) -> None:
    path = recorded[QUESTIONS[0]]
    _edit_token(path)
    config = replace(sealed_config, mode="replay")
    manager = CacheManager(config.resolved_dir, config)
    request = manager.bind(config).chat_request("openai", GPT, QUESTIONS[0])

    async def never() -> dict[str, Any]:
        raise AssertionError("replay called the provider")

    with pytest.raises(SparkError) as raised:
        await manager.get_or_call(request, never, config)

    _assert_clear(raised.value, path)


async def test_verify_lists_every_tampered_entry(
    recorded: dict[str, Path],
    sealed_config: CacheConfig,
    foreign_config: CacheConfig,
    spark_cli: Cli,
    tmp_path: Path,
) -> None:
    paths = [recorded[q] for q in QUESTIONS]
    _edit_token(paths[0])
    _truncate(paths[1])
    _swap(paths[2], paths[3])
    await _plaintext_for(tmp_path, sealed_config, QUESTIONS[4], paths[4])
    await _foreign_for(foreign_config, QUESTIONS[5], paths[5])
    bad, good = paths[:6], paths[6]
    where = ["--profile", "sealed", "--dir", str(sealed_config.resolved_dir)]

    as_json = spark_cli("cache", "verify", *where, "--require-encrypted", "--json")
    as_text = spark_cli("cache", "verify", *where, "--require-encrypted")

    assert as_json.exit_code == as_text.exit_code == 1
    assert verify_named(as_json) == {p.resolve() for p in bad}
    for path in bad:
        assert names_path(as_text.stdout, path), f"{path} not listed:\n{as_text.stdout}"
    assert not names_path(as_text.stdout, good)


# -- encrypt = true means sealed entries only ----------------------------------------------------


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("spark") and r.levelno >= logging.WARNING
    ]


async def test_plaintext_entry_in_an_encrypted_cache_is_a_miss_with_one_warning(
    sealed_config: CacheConfig,
    models: MakeModel,
    server: ProviderServer,
    caplog: pytest.LogCaptureFixture,
    spark_cli: Cli,
) -> None:
    # recorded by an unencrypted config into the same directory
    plain_config = replace(sealed_config, encrypt=False)
    writer = models("openai", plain_config, GPT)
    await writer.generate(QUESTIONS[0])
    path = _path(sealed_config, writer, QUESTIONS[0])
    CacheManager.reset_instances()
    caplog.set_level(logging.WARNING, logger="spark")
    reader = models("openai", replace(sealed_config, mode="read_only"), GPT)

    answers = [await reader.generate(QUESTIONS[0]) for _ in range(4)]

    assert [a.cached for a in answers] == [False] * 4
    assert server.count("openai", "chat") == 5  # the writer's call, then every reader call
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert names_path(warnings[0], path) or "plaintext" in warnings[0].lower()
    # verify --require-encrypted flags it
    where = ["--profile", "sealed", "--dir", str(sealed_config.resolved_dir)]
    result = spark_cli("cache", "verify", *where, "--require-encrypted", "--json")
    assert result.exit_code == 1
    assert verify_named(result) == {path.resolve()}
    # and replay names the file and the way out
    replay = models("openai", replace(sealed_config, mode="replay"), GPT)
    error = await _replay(replay, QUESTIONS[0])
    assert isinstance(error, CacheMissError | CacheError)
    assert names_path(str(error), path)
    assert "spark cache rotate-key" in str(error)


async def test_the_memory_tier_obeys_sealed_only(
    sealed_config: CacheConfig, models: MakeModel, server: ProviderServer
) -> None:
    """In one process: an unencrypted model writes an entry (into the shared memory tier too);
    an encrypted model on the same directory must not get it as a hit."""
    plain = models("openai", replace(sealed_config, encrypt=False), GPT)
    sealed = models("openai", sealed_config, GPT)
    assert plain.cache_manager is sealed.cache_manager  # one manager, one memory tier

    written = await plain.generate(QUESTIONS[0])
    again = await plain.generate(QUESTIONS[0])
    read = await sealed.generate(QUESTIONS[0])

    assert (written.cached, again.cached, read.cached) == (False, True, False)
    assert server.count("openai", "chat") == 2
    # the encrypted model's answer replaced the entry with a sealed one, which it now hits
    assert (await sealed.generate(QUESTIONS[0])).cached
    envelope = json.loads(_path(sealed_config, sealed, QUESTIONS[0]).read_bytes())
    assert isinstance(envelope["payload"], str)


async def test_rotate_key_makes_a_plaintext_entry_usable_in_the_encrypted_cache(
    sealed_config: CacheConfig,
    models: MakeModel,
    server: ProviderServer,
    spark_cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The way out the replay error names: `spark cache rotate-key` encrypts plaintext
    entries (its new key list then holds the old key second)."""
    writer = models("openai", replace(sealed_config, encrypt=False), GPT)
    await writer.generate(QUESTIONS[0])
    CacheManager.reset_instances()
    monkeypatch.setenv("NEW_INTEGRITY_KEY", generate_key())
    where = ["--profile", "sealed", "--dir", str(sealed_config.resolved_dir)]

    result = spark_cli("cache", "rotate-key", *where, "--new-key-env", "NEW_INTEGRITY_KEY", "--yes")

    assert result.exit_code == 0, result.output
    monkeypatch.setenv(KEY_ENV, f"{os.environ['NEW_INTEGRITY_KEY']},{os.environ[KEY_ENV]}")
    replay = models("openai", replace(sealed_config, mode="replay"), GPT)
    assert (await replay.generate(QUESTIONS[0])).cached
    assert server.count("openai", "chat") == 1
    assert spark_cli("cache", "verify", *where, "--require-encrypted").exit_code == 0


async def test_concurrent_replays_of_a_tampered_entry_all_fail(
    recorded: dict[str, Path], sealed_config: CacheConfig, models: MakeModel
) -> None:
    _edit_token(recorded[QUESTIONS[0]])
    replay = models("openai", replace(sealed_config, mode="replay"), GPT)

    results = await asyncio.gather(
        *(replay.generate(QUESTIONS[0]) for _ in range(5)), return_exceptions=True
    )

    assert all(isinstance(r, SparkError) for r in results), results
    assert all(names_path(str(r), recorded[QUESTIONS[0]]) for r in results)


async def test_plaintext_planted_again_and_again_warns_once_in_read_write(
    sealed_config: CacheConfig,
    tmp_path: Path,
    models: MakeModel,
    server: ProviderServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """read_write replaces the refused entry with a sealed one; someone keeps putting the
    plaintext back: every call is a miss, and the warning is not repeated."""
    model = models("openai", sealed_config, GPT)
    path = _path(sealed_config, model, QUESTIONS[0])
    path.parent.mkdir(parents=True)
    caplog.set_level(logging.WARNING, logger="spark")

    await _plaintext_for(tmp_path, sealed_config, QUESTIONS[0], path)
    plaintext = path.read_bytes()
    for _ in range(4):
        path.write_bytes(plaintext)
        answer = await model.generate(QUESTIONS[0])
        assert answer.cached is False
        assert "INJECTED" not in answer.text
        assert isinstance(json.loads(path.read_bytes())["payload"], str)  # replaced, sealed

    assert server.count("openai", "chat") == 4
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
