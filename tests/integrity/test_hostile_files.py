"""Hostile files at entry paths: every one is a counted miss (the provider answers), a replay
error naming the file, and a bad entry for ``spark cache verify`` -- in bounded time and memory,
never an exception, never read or written through a symlink.

Entries are written through Spark (``CacheManager.get_or_call``) and then replaced or edited on
disk; calls that could hang (a FIFO) run in a thread with a timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _fuzzlib import (
    DEEP_DICT,
    DEEP_LIST,
    DELETE,
    GPT,
    HUGE,
    KEY_ENV,
    FuzzCache,
    ProviderStub,
    Raw,
    Target,
    close_model,
    entry_path,
    fresh_answer,
    injected_answer,
    make_model,
    names_path,
    plant,
    seed_cache,
    unblock_fifos,
    verify_named,
    within,
)

from spark.cache import CacheConfig, CacheManager, CacheRequest
from spark.errors import SparkError
from spark.testing import ProviderServer

Cli = Callable[..., Any]  # the spark_cli fixture
MakeModel = Callable[..., Any]  # the models fixture

PROMPTS = ["hostile question 0", "hostile question 1", "hostile question 2"]
# Words one of which a replay error's reason uses (besides the path).
REASON_WORDS = (
    "corrupt", "truncated", "damaged", "tampered", "plaintext", "key", "refused", "unreadable",
    "mismatch", "different", "not a", "invalid", "digest", "format", "symlink", "fifo", "folder",
    "regular", "limit", "unusable", "decrypt",
)  # fmt: skip


@pytest.fixture
async def plain(plain_config: CacheConfig) -> FuzzCache:
    """Three plaintext entries (text, a tool call, usage, cost) in read_write."""
    return await seed_cache("plain", plain_config, PROMPTS)


@pytest.fixture
async def sealed(sealed_config: CacheConfig, keys: dict[str, str]) -> FuzzCache:
    """The same three requests in an encrypted cache."""
    return await seed_cache("sealed", sealed_config, PROMPTS, fernet_key=keys[KEY_ENV])


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root``: its bytes and modification time."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


async def read_write(cache: FuzzCache, request: CacheRequest, serial: int = 1) -> None:
    """A read_write call: a miss that calls the provider once and returns its answer."""
    fresh = fresh_answer(request, serial)
    provider = ProviderStub(fresh)
    result = await CacheManager(cache.root, cache.config).get_or_call(
        request, provider, cache.config
    )
    assert (dict(result.response), result.cached, provider.calls) == (fresh, False, 1)


def replay_error(cache: FuzzCache, request: CacheRequest) -> SparkError:
    """The replay-mode error for ``request`` (the provider is never called)."""
    config = replace(cache.config, mode="replay")
    provider = ProviderStub(None)

    async def call() -> Any:
        return await CacheManager(cache.root, config).get_or_call(request, provider, config)

    with pytest.raises(SparkError) as raised:
        within(10, lambda: asyncio.run(call()), unblock=lambda: unblock_fifos(cache.root))
    assert provider.calls == 0
    return raised.value


def assert_names(error: BaseException, path: Path) -> None:
    message = str(error)
    assert names_path(message, path), f"the error does not name {path}: {message}"
    reason = message.lower().replace(str(path).lower(), "")
    assert any(word in reason for word in REASON_WORDS), f"no reason in: {message}"


def admin_calls(cache: FuzzCache, key: str) -> bool:
    """``has_entry``, ``get_stats`` and ``cleanup_expired`` (each bounded in time); has_entry."""
    manager = CacheManager(cache.root, cache.config)

    def run() -> bool:
        found = manager.has_entry(key)
        stats = manager.get_stats()
        assert isinstance(stats["total_entries"], int)
        assert manager.cleanup_expired() >= 0
        return found

    return bool(within(10, run, unblock=lambda: unblock_fifos(cache.root)))


def verify_names(spark_cli: Cli, cache: FuzzCache, path: Path) -> None:
    """``spark cache verify`` fails and names ``path``; the listing commands do not abort."""
    profile = ["--profile", cache.label, "--dir", str(cache.root)]
    extra = ["--require-encrypted"] if cache.sealed else []
    result = spark_cli("cache", "verify", *profile, "--json", *extra)
    assert result.exit_code == 1, result.output
    assert path.resolve() in verify_named(result), result.stdout
    text = spark_cli("cache", "verify", *profile, *extra)
    assert text.exit_code == 1
    assert names_path(text.stdout, path), text.stdout
    for command in (["ls"], ["ls", "--json"], ["stats"], ["stats", "--json"]):
        assert spark_cli("cache", *command, *profile).exit_code == 0


# -- special files: FIFO, directory, symlinks -------------------------------------------------


def _fifo(path: Path, elsewhere: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _directory(path: Path, elsewhere: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inner.json").write_bytes(elsewhere.read_bytes())


def _symlink_to_entry(path: Path, elsewhere: Path) -> None:
    path.unlink()
    path.symlink_to(elsewhere)


def _dangling_symlink(path: Path, elsewhere: Path) -> None:
    path.unlink()
    path.symlink_to(path.parent / "nowhere.json")


def _symlink_to_fifo(path: Path, elsewhere: Path) -> None:
    fifo = elsewhere.parent / "pipe"
    os.mkfifo(fifo)
    path.unlink()
    path.symlink_to(fifo)


SPECIAL = {
    "fifo": _fifo,
    "directory": _directory,
    "symlink to a valid entry": _symlink_to_entry,
    "dangling symlink": _dangling_symlink,
    "symlink to a fifo": _symlink_to_fifo,
}


@pytest.mark.parametrize("kind", SPECIAL)
async def test_special_file_at_an_entry_path_is_a_quick_miss(
    kind: str, plain: FuzzCache, tmp_path: Path, spark_cli: Cli
) -> None:
    entry = plain.entries[0]
    # a valid entry for the same request, with an injected answer, outside the cache
    elsewhere_config = CacheConfig(enabled=True, cache_dir=tmp_path / "elsewhere")
    await plant(elsewhere_config, entry.request, injected_answer(entry.request, kind))
    elsewhere = entry_path(elsewhere_config.resolved_dir, "openai", GPT, entry.request.key)
    outside = snapshot(elsewhere.parent)
    SPECIAL[kind](entry.path, elsewhere)

    assert_names(replay_error(plain, entry.request), entry.path)
    assert admin_calls(plain, entry.request.key) is False
    verify_names(spark_cli, plain, entry.path)

    def call() -> None:
        asyncio.run(read_write(plain, entry.request))

    within(10, call, unblock=lambda: unblock_fifos(tmp_path))
    assert snapshot(elsewhere.parent) == outside  # nothing read or written through a link


async def test_fifo_at_an_entry_path_through_the_model_returns_the_providers_answer(
    plain: FuzzCache, server: ProviderServer, tmp_path: Path
) -> None:
    entry = plain.entries[0]
    entry.path.unlink()
    os.mkfifo(entry.path)

    async def ask() -> Any:  # (in a thread of its own: a blocked read must not block this loop)
        model = make_model(server, "openai", plain.config, GPT)
        try:
            return await model.generate(entry.spec.prompt)
        finally:
            await close_model(model)

    answer = within(15, lambda: asyncio.run(ask()), unblock=lambda: unblock_fifos(tmp_path))

    assert answer.cached is False
    assert answer.text.startswith("Answer ")
    assert server.count("openai", "chat") == 1


@pytest.mark.parametrize("link", ["model folder", "provider folder"])
async def test_symlinked_folder_is_neither_read_nor_written_through(
    link: str,
    plain: FuzzCache,
    tmp_path: Path,
    spark_cli: Cli,
    models: MakeModel,
    server: ProviderServer,
) -> None:
    entry = plain.entries[0]
    root = plain.root
    # outside the cache: a valid entry for the request, with an injected answer
    outside = tmp_path / "outside"
    planted_config = CacheConfig(enabled=True, cache_dir=tmp_path / "planted")
    await plant(planted_config, entry.request, injected_answer(entry.request, "outside"))
    planted = entry_path(planted_config.resolved_dir, "openai", GPT, entry.request.key)
    if link == "model folder":
        (outside).mkdir()
        shutil.copy(planted, outside / planted.name)
        shutil.rmtree(root / "openai" / GPT)
        (root / "openai" / GPT).symlink_to(outside, target_is_directory=True)
    else:
        (outside / GPT).mkdir(parents=True)
        shutil.copy(planted, outside / GPT / planted.name)
        shutil.rmtree(root / "openai")
        (root / "openai").symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)

    # read_write: a miss, and the write does not land outside
    await read_write(plain, entry.request)
    other = plain.entries[1]
    await read_write(plain, other.request, serial=2)
    assert snapshot(outside) == before
    # through a model too: the provider answers, nothing outside changes
    model = models("openai", plain.config, GPT)
    answer = await model.generate("a question never asked before")
    assert answer.cached is False
    assert server.count("openai", "chat") == 1
    assert snapshot(outside) == before
    # replay refuses it, naming what it did not follow
    error = replay_error(plain, entry.request)
    assert "INJECTED" not in str(error)
    # every command leaves the outside alone (clear and cleanup included)
    profile = ["--profile", "plain", "--dir", str(root)]
    for command in (
        ["verify"],
        ["ls", "--json"],
        ["stats", "--json"],
        ["show", entry.request.key],
        ["cleanup"],
        ["prune", "--unused", "--yes"],
        ["clear", "--yes"],
    ):
        spark_cli("cache", *command, *profile)
    manager = CacheManager(root, plain.config)
    manager.cleanup_expired()
    manager.clear_all()
    assert snapshot(outside) == before
    assert (
        outside / GPT / planted.name if link != "model folder" else outside / planted.name
    ).exists()


async def test_verify_reports_a_symlinked_model_folder(
    plain: FuzzCache, tmp_path: Path, spark_cli: Cli
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = plain.root / "openai" / GPT
    for path in folder.iterdir():
        shutil.copy(path, outside / path.name)
    shutil.rmtree(folder)
    folder.symlink_to(outside, target_is_directory=True)

    result = spark_cli("cache", "verify", "--dir", str(plain.root))

    assert result.exit_code == 1
    assert names_path(result.stdout, folder), result.stdout


_DEV_ZERO_CHILD = textwrap.dedent(
    """
    import asyncio, json, os, resource, sys
    from pathlib import Path
    # a reader that followed the link would read without end: fail fast instead of eating
    # the machine's memory
    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
    from click.testing import CliRunner
    from spark.cache import CacheConfig, CacheManager
    from spark.cli import cli
    from spark.errors import SparkError

    root, prompt = Path(sys.argv[1]), sys.argv[2]
    config = CacheConfig(enabled=True, cache_dir=root)
    replay = CacheConfig(enabled=True, cache_dir=root, mode="replay")

    async def main():
        out = {}
        manager = CacheManager(root, config)
        request = manager.bind(config).chat_request("openai", "gpt-4o-mini", prompt)
        async def never():
            raise AssertionError("replay called the provider")
        try:
            await CacheManager(root, replay).get_or_call(request, never, replay)
            out["replay"] = "served"
        except SparkError as exc:
            out["replay"] = str(exc)
        out["has_entry"] = manager.has_entry(request.key)
        manager.get_stats()
        manager.cleanup_expired()
        result = CliRunner().invoke(cli, ["cache", "verify", "--json", "--dir", str(root)])
        out["verify"] = [result.exit_code, result.stdout, repr(result.exception)]
        async def fresh():
            return {"text": "fresh"}
        result = await manager.get_or_call(request, fresh, config)
        out["answer"] = [dict(result.response), result.cached]
        print(json.dumps(out))

    asyncio.run(main())
    """
)


async def test_a_symlink_to_dev_zero_is_not_read(plain: FuzzCache, tmp_path: Path) -> None:
    """(In a child process with a memory limit: a reader that follows it reads forever.)"""
    entry = plain.entries[0]
    entry.path.unlink()
    entry.path.symlink_to("/dev/zero")

    done = subprocess.run(
        [sys.executable, "-c", _DEV_ZERO_CHILD, str(plain.root), entry.spec.prompt],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert names_path(out["replay"], entry.path), out["replay"]
    assert out["has_entry"] is False
    code, stdout, exc = out["verify"]
    assert code == 1, (stdout, exc)
    assert (
        entry.path.resolve() in {Path(p["path"]).resolve() for p in json.loads(stdout)["problems"]}
        or str(entry.path) in stdout
    )
    assert out["answer"] == [{"text": "fresh"}, False]


# -- a 200 MB entry ---------------------------------------------------------------------------

_HUGE_CHILD = textwrap.dedent(
    """
    import asyncio, json, resource, sys, time
    from pathlib import Path
    from click.testing import CliRunner
    from spark.cache import CacheConfig, CacheManager
    from spark.cli import cli
    from spark.errors import SparkError

    root, prompt, path = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    config = CacheConfig(enabled=True, cache_dir=root)
    replay = CacheConfig(enabled=True, cache_dir=root, mode="replay")

    async def main():
        out = {"times": {}}
        request = CacheManager(root, config).bind(config).chat_request("openai", "gpt-4o-mini", prompt)
        async def fresh():
            return {"text": "fresh", "usage": {"input_tokens": 1, "output_tokens": 1}}
        async def never():
            raise AssertionError("replay called the provider")
        out["rss_before"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        start = time.perf_counter()
        try:
            await CacheManager(root, replay).get_or_call(request, never, replay)
            out["replay"] = "served"
        except SparkError as exc:
            out["replay"] = str(exc)
        out["times"]["replay"] = time.perf_counter() - start
        manager = CacheManager(root, config)
        for name, call in (("has_entry", lambda: manager.has_entry(request.key)),
                           ("get_stats", manager.get_stats),
                           ("cleanup_expired", manager.cleanup_expired)):
            start = time.perf_counter()
            value = call()
            out["times"][name] = time.perf_counter() - start
            if name == "has_entry":
                out["has_entry"] = value
        for args in (["verify", "--json"], ["ls"], ["stats"], ["show", request.key]):
            start = time.perf_counter()
            result = CliRunner().invoke(cli, ["cache", *args, "--dir", str(root)])
            out["times"][" ".join(args)] = time.perf_counter() - start
            out.setdefault("cli", {})[args[0]] = [result.exit_code, result.stdout[-2000:],
                                                  repr(result.exception)]
        start = time.perf_counter()
        result = await manager.get_or_call(request, fresh, config)
        out["times"]["read_write"] = time.perf_counter() - start
        out["answer"] = [dict(result.response), result.cached]
        out["rss_after"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps(out))

    asyncio.run(main())
    """
)


async def test_a_200_mb_entry_is_refused_in_bounded_time_and_memory(
    plain: FuzzCache, tmp_path: Path
) -> None:
    entry = plain.entries[0]
    # a valid-looking start (the envelope without its closing brace), then 200 MB of zeros
    with entry.path.open("wb") as handle:
        handle.write(entry.pristine[:-1])
        handle.truncate(200 * 2**20)
    args = [str(plain.root), entry.spec.prompt, str(entry.path)]

    done = subprocess.run(
        [sys.executable, "-c", _HUGE_CHILD, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    growth = out["rss_after"] - out["rss_before"]
    assert growth < 100 * 2**20, f"peak memory grew by {growth / 2**20:.0f} MB"
    slow = {name: t for name, t in out["times"].items() if t > 10}
    assert not slow, f"too slow: {slow}"
    assert names_path(out["replay"], entry.path), out["replay"]
    assert out["has_entry"] is False
    verify_code, verify_out, verify_exc = out["cli"]["verify"]
    assert verify_code == 1, (verify_out, verify_exc)
    assert entry.path.resolve() in {
        Path(p["path"]).resolve() for p in json.loads(verify_out)["problems"]
    }
    for name in ("ls", "stats", "show"):
        code, text, exc = out["cli"][name]
        assert code in (0, 1), (name, text, exc)
        assert "Traceback" not in text, (name, text, exc)
    assert out["answer"] == [
        {"text": "fresh", "usage": {"input_tokens": 1, "output_tokens": 1}},
        False,
    ]


# -- hostile contents -------------------------------------------------------------------------


def _flip_in_answer(t: Target) -> bytes:
    """One bit of the stored answer text flipped (a plaintext entry: only its digest says)."""
    at = t.pristine.index(b"stored answer") + 3
    return t.pristine[:at] + bytes([t.pristine[at] ^ 0x01]) + t.pristine[at + 1 :]


def _response(t: Target, **changes: Any) -> bytes:
    payload = json.loads(json.dumps(t.payload))
    payload["response"].update(changes)
    return t.with_payload(payload)


def _tool_arguments(t: Target, value: Any) -> bytes:
    payload = json.loads(json.dumps(t.payload))
    payload["response"]["tool_calls"][0]["arguments"] = value
    return t.with_payload(payload)


def _in_token(t: Target, char: bytes) -> bytes:
    token = t.envelope["payload"].encode()
    at = t.pristine.index(token) + len(token) // 2
    return t.pristine[:at] + char + t.pristine[at + 1 :]


def _edited_token(t: Target) -> bytes:
    token = t.envelope["payload"]
    middle = len(token) // 2
    return t.with_envelope(
        payload=token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    )


def _rekeyed(t: Target, other: bytes) -> bytes:
    return other.replace(json.loads(other)["key"].encode(), t.envelope["key"].encode())


# name -> (which cache, how to make the bytes from the entry, its neighbour, the foreign bytes)
Build = Callable[[Target, bytes, bytes, bytes], bytes]
CONTENTS: dict[str, tuple[str, Build]] = {
    "empty file": ("plain", lambda t, o, f, p: b""),
    "truncated": ("plain", lambda t, o, f, p: t.pristine[:100]),
    "truncated by one byte": ("plain", lambda t, o, f, p: t.pristine[:-1]),
    "not JSON": ("plain", lambda t, o, f, p: b"\x89PNG\r\n\x1a\n\x00\xff{{not json"),
    "bit flip in the plaintext answer": ("plain", lambda t, o, f, p: _flip_in_answer(t)),
    "usage is a string": ("plain", lambda t, o, f, p: _response(t, usage="x")),
    "usage count negative": ("plain", lambda t, o, f, p: _response(t, usage={"input_tokens": -3})),
    "usage count a float": ("plain", lambda t, o, f, p: _response(t, usage={"input_tokens": 1.5})),
    "text is a number": ("plain", lambda t, o, f, p: _response(t, text=5)),
    "tool calls is a string": ("plain", lambda t, o, f, p: _response(t, tool_calls="x")),
    "refusal is a list": ("plain", lambda t, o, f, p: _response(t, refusal=["no"])),
    "citations is a string": ("plain", lambda t, o, f, p: _response(t, citations="x")),
    "reasoning is a number": ("plain", lambda t, o, f, p: _response(t, reasoning=3)),
    "a tool call's signature is not base64": (
        "plain",
        lambda t, o, f, p: _response(
            t, tool_calls=[{"id": "c", "name": "f", "arguments": {}, "signature": "no!"}]
        ),
    ),
    "a tool call's signature is a number": (
        "plain",
        lambda t, o, f, p: _response(
            t, tool_calls=[{"id": "c", "name": "f", "arguments": {}, "signature": 7}]
        ),
    ),
    "provider output is a string": (
        "plain",
        lambda t, o, f, p: _response(t, provider_output="x"),
    ),
    "2,000-deep citations": ("plain", lambda t, o, f, p: _response(t, citations=DEEP_LIST)),
    "a choice's refusal is a number": (
        "plain",
        lambda t, o, f, p: _response(t, choices=[{"text": "a", "refusal": 5}]),
    ),
    "tool call without an id": (
        "plain",
        lambda t, o, f, p: _response(t, tool_calls=[{"name": "f"}]),
    ),
    "tool call arguments a list": ("plain", lambda t, o, f, p: _tool_arguments(t, [1, 2])),
    "cost is NaN": ("plain", lambda t, o, f, p: _response(t, cost_usd=Raw(b"NaN"))),
    "cost is Infinity": ("plain", lambda t, o, f, p: _response(t, cost_usd=Raw(b"Infinity"))),
    "cost is 1e999": ("plain", lambda t, o, f, p: _response(t, cost_usd=Raw(b"1e999"))),
    "cost is negative": ("plain", lambda t, o, f, p: _response(t, cost_usd=-0.5)),
    "cost is a 401-digit integer": ("plain", lambda t, o, f, p: _response(t, cost_usd=HUGE)),
    "cost is a string": ("plain", lambda t, o, f, p: _response(t, cost_usd="0.001")),
    "2,000-deep answer": ("plain", lambda t, o, f, p: _response(t, text=DEEP_LIST)),
    "2,000-deep tool arguments": ("plain", lambda t, o, f, p: _tool_arguments(t, DEEP_DICT)),
    "2,000-deep envelope": ("plain", lambda t, o, f, p: t.with_envelope(key=DEEP_LIST)),
    "invalid UTF-8 in model_id": (
        "plain",
        lambda t, o, f, p: t.pristine.replace(b'"model_id":"gpt', b'"model_id":"\xff\xfegpt'),
    ),
    "invalid UTF-8 in the answer": (
        "plain",
        lambda t, o, f, p: t.pristine.replace(b"stored answer", b"stored \xc3\x28nswer"),
    ),
    'created_at "1.2.3"': ("plain", lambda t, o, f, p: t.with_envelope(created_at="1.2.3")),
    "created_at NaN": ("plain", lambda t, o, f, p: t.with_envelope(created_at=Raw(b"NaN"))),
    "created_at a 401-digit integer": (
        "plain",
        lambda t, o, f, p: t.with_envelope(created_at=HUGE),
    ),
    "expires_at a list": ("plain", lambda t, o, f, p: t.with_envelope(expires_at=[1])),
    "format a 401-digit integer": ("plain", lambda t, o, f, p: t.with_envelope(format=HUGE)),
    "format 99": ("plain", lambda t, o, f, p: t.with_envelope(format=99)),
    "key_fingerprint a list": ("plain", lambda t, o, f, p: t.with_envelope(key_fingerprint=["a"])),
    "encryption unknown": ("plain", lambda t, o, f, p: t.with_envelope(encryption="rot13")),
    "payload a list": ("plain", lambda t, o, f, p: t.with_envelope(payload=[])),
    "another request's entry": ("plain", lambda t, o, f, p: o),
    "another request's entry, key edited": ("plain", lambda t, o, f, p: _rekeyed(t, o)),
    "another request's payload, digest recomputed": (
        "plain",
        lambda t, o, f, p: t.with_payload(json.loads(o)["payload"]),
    ),
    "sealed: non-ASCII byte in the token": ("sealed", lambda t, o, f, p: _in_token(t, b"\xc3")),
    "sealed: token edited": ("sealed", lambda t, o, f, p: _edited_token(t)),
    "sealed: token truncated": ("sealed", lambda t, o, f, p: t.pristine[: len(t.pristine) // 2]),
    "sealed: another request's entry, key edited": ("sealed", lambda t, o, f, p: _rekeyed(t, o)),
    "sealed: usage is a string (resealed)": ("sealed", lambda t, o, f, p: _response(t, usage="x")),
    "sealed: with a key not held": ("sealed", lambda t, o, f, p: f),
    "sealed: plaintext entry": ("sealed", lambda t, o, f, p: p),
}


@pytest.mark.parametrize("name", CONTENTS)
async def test_hostile_content_is_a_miss_a_replay_error_and_a_verify_failure(
    name: str,
    plain: FuzzCache,
    sealed: FuzzCache,
    foreign_config: CacheConfig,
    spark_cli: Cli,
) -> None:
    label, build = CONTENTS[name]
    cache = plain if label == "plain" else sealed
    entry, other = cache.entries[0], cache.entries[1]
    foreign = await plant(foreign_config, entry.request, injected_answer(entry.request, name))
    data = build(Target(cache, entry), other.pristine, foreign, plain.entries[0].pristine)
    entry.path.write_bytes(data)

    error = replay_error(cache, entry.request)
    assert_names(error, entry.path)
    if name == "sealed: plaintext entry":
        assert "spark cache rotate-key" in str(error)
    admin_calls(cache, entry.request.key)
    verify_names(spark_cli, cache, entry.path)
    await read_write(cache, entry.request)


@pytest.mark.parametrize(
    "name",
    [
        "usage is a string",
        "usage count negative",
        "text is a number",
        "tool calls is a string",
        "tool call without an id",
        "tool call arguments a list",
        "cost is NaN",
        "cost is a 401-digit integer",
        "2,000-deep tool arguments",
        "bit flip in the plaintext answer",
        "another request's payload, digest recomputed",
    ],
)
async def test_type_confused_entry_is_a_miss_through_generate(
    name: str, plain: FuzzCache, server: ProviderServer, models: MakeModel
) -> None:
    """Never an AttributeError (or any error) from ``generate()``: the provider answers."""
    entry, other = plain.entries[0], plain.entries[1]
    _, build = CONTENTS[name]
    entry.path.write_bytes(build(Target(plain, entry), other.pristine, b"", b""))
    model = models("openai", plain.config, GPT)

    answer = await model.generate(entry.spec.prompt)

    assert answer.cached is False
    assert answer.text.startswith("Answer ")  # the local server's answer, not the stored one
    assert server.count("openai", "chat") == 1


async def test_format_1_entries_stay_readable(
    plain: FuzzCache, sealed: FuzzCache, spark_cli: Cli
) -> None:
    for cache in (plain, sealed):
        entry = cache.entries[0]
        target = Target(cache, entry)
        changes: dict[str, Any] = {"format": 1}
        if target.digest is not None:  # format 1 has no digest: drop the field that holds it
            digest = target.digest.decode()
            changes |= {
                name: DELETE
                for name, value in target.envelope.items()
                if isinstance(value, str) and digest in value
            }
        entry.path.write_bytes(target.with_envelope(**changes))
        provider = ProviderStub(None)

        result = await CacheManager(cache.root, cache.config).get_or_call(
            entry.request, provider, cache.config
        )

        assert (dict(result.response), result.cached) == (entry.original, True)
        extra = ["--require-encrypted"] if cache.sealed else []
        verify = spark_cli(
            "cache", "verify", "--profile", cache.label, "--dir", str(cache.root), *extra
        )
        assert verify.exit_code == 0, verify.output
