"""The entry fuzzer, shared by ``tests/integrity`` and ``scripts/fuzz_entries.py`` (which loads
this file by path): the models that record real entries, the mutation generator, and the
oracle that runs each mutated file through the engine API, replay mode, the models and the CLI.

Black-box: entries are recorded through Spark (models against ``spark.testing.ProviderServer``,
or ``CacheManager.get_or_call``) and then only their bytes are changed. Nothing here depends on
the envelope's digest field by name: a digest is found by its value (the SHA-256 of the
plaintext payload as stored) and recomputed when a mutation must keep it valid.

The oracle, per mutated file:

* no call raises anything but a ``SparkError`` in replay mode;
* the answer served is the entry's original answer, or the provider's fresh answer (a counted
  miss, the provider called once) -- or, only for a response changed into another *valid*
  answer (``Mutation.alt``), that answer; never another request's, an injected one, or a
  type-confused one;
* replay mode never calls the provider; it serves what read_write serves, and refuses with an
  error naming the file where read_write misses;
* ``spark cache verify`` names a file exactly when the engine will not serve it (entries whose
  only change is their timestamps may legitimately expire, and are exempt).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import random
import shutil
import statistics
import string
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from cryptography.fernet import Fernet

from spark.cache import CacheConfig, CacheManager, CacheRequest, generate_key
from spark.cli import cli
from spark.errors import SparkError
from spark.types import EmbeddingResponse, ModelResponse

# -- the test environment ---------------------------------------------------------------------

KEY_ENV = "SPARK_INTEGRITY_KEY"  # the key the sealed cache holds
OTHER_KEY_ENV = "SPARK_INTEGRITY_OTHER_KEY"  # a key the sealed cache does not hold
NEW_KEY_ENV = "SPARK_INTEGRITY_NEW_KEY"  # for rotate-key

OPENAI_KEY = "sk-test-integrity-0123456789"
GOOGLE_KEY = "AIza-test-integrity-0123456789"
AWS_KEY_ID = "AKIAINTEGRITYTEST001"
AWS_SECRET = "integrity-test-secret-access-key-0123456789"

GPT = "gpt-4o-mini"
EMBED = "text-embedding-3-small"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
GEMINI = "gemini-2.0-flash"
GEMINI_EMBED = "gemini-embedding-001"

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    },
}
TOOL_ARGUMENTS = {"city": "Paris", "days": 3, "units": {"temp": ["C", "F"]}}

# A spark.toml for the CLI: every command is run with --config, --profile and --dir.
SPARK_TOML = f"""\
[spark]
default_profile = "plain"

[profiles.plain.cache]
enabled = true

[profiles.sealed.cache]
enabled = true
encrypt = true
key_env = "{KEY_ENV}"
"""


def openai_model(server: Any, config: CacheConfig, model_id: str = GPT, **options: Any) -> Any:
    """An OpenAIModel on the local server (real SDK, no retries)."""
    from spark.models.openai import OpenAIModel

    options.setdefault("max_retries", 0)
    return OpenAIModel(
        model_id,
        api_key=OPENAI_KEY,
        base_url=server.openai_base_url,
        cache_config=config,
        **options,
    )


def bedrock_model(server: Any, config: CacheConfig, model_id: str = CLAUDE, **options: Any) -> Any:
    """A BedrockModel on the local server (real boto3, SigV4 with test credentials, one
    attempt)."""
    from spark.models.bedrock import BedrockModel

    options.setdefault("max_retries", 0)
    return BedrockModel(
        model_id,
        region="us-east-1",
        endpoint_url=server.bedrock_endpoint_url,
        aws_access_key_id=AWS_KEY_ID,
        aws_secret_access_key=AWS_SECRET,
        cache_config=config,
        **options,
    )


def gemini_model(server: Any, config: CacheConfig, model_id: str = GEMINI, **options: Any) -> Any:
    """A GeminiModel on the local server (real google-genai, no retries)."""
    from spark.models.gemini import GeminiModel

    options.setdefault("max_retries", 0)
    return GeminiModel(
        model_id,
        api_key=GOOGLE_KEY,
        base_url=server.gemini_base_url,
        cache_config=config,
        **options,
    )


MODEL_FACTORIES: dict[str, Callable[..., Any]] = {
    "openai": openai_model,
    "bedrock": bedrock_model,
    "gemini": gemini_model,
}


def make_model(server: Any, provider: str, config: CacheConfig, model_id: str) -> Any:
    """A model of ``provider`` on the local server."""
    return MODEL_FACTORIES[provider](server, config, model_id)


async def close_model(model: Any) -> None:
    """Release a model's SDK client."""
    await model.aclose()


# -- paths ------------------------------------------------------------------------------------

_SAFE = frozenset(string.ascii_letters + string.digits + "._-")


def quote_model(model_id: str) -> str:
    """The model folder name of docs/caching.md (short ids only)."""
    out = "".join(
        ch if ch in _SAFE else "".join(f"%{b:02X}" for b in ch.encode()) for ch in model_id
    )
    return "%2E" + out[1:] if out.startswith(".") else out


def entry_path(cache_dir: Path, provider: str, model_id: str, key: str) -> Path:
    """``{cache_dir}/{provider}/{model}/{key}.json``."""
    return Path(cache_dir) / provider / quote_model(model_id) / f"{key}.json"


def names_path(message: str, path: Path) -> bool:
    """Whether ``message`` names ``path`` (absolute, resolved, or relative to the cwd)."""
    spellings = {str(path), str(Path(path).resolve())}
    with contextlib.suppress(ValueError):  # (another drive, on Windows)
        spellings.add(os.path.relpath(path))
    return any(spelling in message for spelling in spellings)


def write_file(path: Path, data: bytes) -> None:
    """Put ``data`` at ``path`` (a regular file), making its folder if a command removed it."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def unblock_fifos(root: Path) -> None:
    """Open every FIFO under ``root`` for writing and close it: a reader blocked on one sees
    the end of the file (so a hung call can finish after its test has failed)."""
    for path in Path(root).rglob("*"):
        with contextlib.suppress(OSError):  # no reader (ENXIO), or gone
            if path.is_fifo():
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def within(
    seconds: float, call: Callable[[], Any], *, unblock: Callable[[], None] | None = None
) -> Any:
    """``call()`` in a thread; fails the test if it has not returned after ``seconds``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed back to the test thread
            box["error"] = exc

    thread = threading.Thread(target=run, name="integrity-call", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if unblock is not None:
            unblock()
            thread.join(5)
        raise AssertionError(f"the call did not return within {seconds} s (it hangs)")
    if "error" in box:
        raise box["error"]
    return box.get("value")


# -- answers ----------------------------------------------------------------------------------


def is_embedding(request: CacheRequest) -> bool:
    return request.normalized.get("kind") == "embedding"


def fresh_answer(request: CacheRequest, serial: int) -> dict[str, Any]:
    """What the fake provider of the engine checks answers: recognisably new."""
    usage = {"input_tokens": 3, "output_tokens": 5}
    if is_embedding(request):
        return {"embeddings": [[0.125, -0.5, serial / 1000.0]], "usage": usage, "cost_usd": None}
    return {
        "text": f"FRESH answer {serial}",
        "tool_calls": [],
        "finish_reason": "stop",
        "usage": usage,
        "cost_usd": 0.0001,
    }


def injected_answer(request: CacheRequest, name: str) -> dict[str, Any]:
    """The answer of an entry planted by someone else: must never be served."""
    usage = {"input_tokens": 1, "output_tokens": 1}
    if is_embedding(request):
        return {"embeddings": [[6.0, 6.0, 6.0]], "usage": usage, "cost_usd": 0.5}
    return {
        "text": f"INJECTED answer for {name}",
        "tool_calls": [{"id": "call_evil", "name": "rm_rf", "arguments": {"path": "/"}}],
        "finish_reason": "stop",
        "usage": usage,
        "cost_usd": 0.5,
    }


class ProviderStub:
    """The provider side of ``get_or_call``: counts its calls, returns a fixed answer."""

    def __init__(self, answer: Mapping[str, Any] | None) -> None:
        self.answer = answer
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.answer is None:
            raise AssertionError("the provider must not be called here")
        return copy.deepcopy(dict(self.answer))


# -- the corpus: real entries recorded through the models -------------------------------------


@dataclass(frozen=True)
class Spec:
    """One request recorded through a model."""

    name: str
    provider: str
    model_id: str
    kind: str  # "text", "tools", "stream" or "embedding"
    prompt: Any
    params: Mapping[str, Any] = field(default_factory=dict)

    def cache_request(self, manager: CacheManager, config: CacheConfig) -> CacheRequest:
        bound = manager.bind(config)
        if self.kind == "embedding":
            return bound.embedding_request(self.provider, self.model_id, self.prompt)
        return bound.chat_request(self.provider, self.model_id, self.prompt, **self.params)

    def explain_json(self) -> str | None:
        """The ``spark cache explain`` request of a chat spec."""
        if self.kind == "embedding":
            return None
        request = {"provider": self.provider, "model_id": self.model_id, "messages": self.prompt}
        return json.dumps({**request, **self.params})


SPECS: tuple[Spec, ...] = (
    Spec("openai-text", "openai", GPT, "text", "integrity question one"),
    Spec("openai-text-2", "openai", GPT, "text", "integrity question two", {"temperature": 0.5}),
    Spec("openai-tools", "openai", GPT, "tools", "Weather in Paris?", {"tools": [WEATHER]}),
    Spec("openai-stream", "openai", GPT, "stream", "integrity stream question"),
    Spec("openai-embedding", "openai", EMBED, "embedding", ["alpha", "beta"]),
    Spec("bedrock-text", "bedrock", CLAUDE, "text", "integrity bedrock question"),
    Spec("gemini-tools", "gemini", GEMINI, "tools", "Weather in Oslo?", {"tools": [WEATHER]}),
    # Answers with the provider's own reports: reasoning with signatures, a signed call, code
    # run by the provider, a cited document.
    Spec("bedrock-thinking", "bedrock", CLAUDE, "text", "integrity thinking", {"additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}}),
    Spec("gemini-thinking-tools", "gemini", GEMINI, "tools", "Weather in Rome?", {"tools": [WEATHER], "thinking_config": {"include_thoughts": True}}),
    Spec("gemini-code", "gemini", GEMINI, "text", "integrity code run", {"tools": [{"code_execution": {}}]}),
)  # fmt: skip


async def call_model(model: Any, spec: Spec) -> Any:
    """The spec's call: a ModelResponse, an EmbeddingResponse, or the list of streamed chunks."""
    if spec.kind == "embedding":
        return await model.embed(spec.prompt)
    if spec.kind == "stream":
        return [chunk async for chunk in model.stream_text(spec.prompt, **spec.params)]
    return await model.generate(spec.prompt, **spec.params)


@dataclass
class Entry:
    """One recorded entry of one cache, and what it should read back as."""

    spec: Spec
    request: CacheRequest
    path: Path
    pristine: bytes
    original: dict[str, Any]  # the response a hit returns
    planted: dict[str, bytes] = field(default_factory=dict)  # other valid files for this key

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class FuzzCache:
    """A cache directory holding one recorded entry per spec."""

    label: str  # "plain" or "sealed"
    config: CacheConfig
    entries: list[Entry]
    fernet_key: str | None

    @property
    def root(self) -> Path:
        return Path(str(self.config.cache_dir))

    @property
    def sealed(self) -> bool:
        return self.config.encrypt


@dataclass
class Corpus:
    workdir: Path
    toml: Path
    caches: list[FuzzCache]
    server_answers: dict[str, Any]  # spec name -> what the provider answers without the cache


async def read_original(config: CacheConfig, request: CacheRequest) -> dict[str, Any]:
    """The response a cold reader gets for ``request`` (it must be a hit)."""
    result = await CacheManager(config.resolved_dir, config).get_or_call(
        request, ProviderStub(None), config
    )
    assert result.cached, f"the recorded entry of {request.key} is not a hit"
    return copy.deepcopy(dict(result.response))


async def plant(config: CacheConfig, request: CacheRequest, answer: Mapping[str, Any]) -> bytes:
    """A valid entry for ``request`` written through Spark with ``config``: its bytes."""
    manager = CacheManager(config.resolved_dir, config)
    result = await manager.get_or_call(request, ProviderStub(answer), config)
    assert not result.cached
    path = entry_path(config.resolved_dir, request.provider, request.model_id, request.key)
    return path.read_bytes()


async def record_corpus(
    server: Any,
    workdir: Path,
    setenv: Callable[[str, str], None],
    *,
    specs: tuple[Spec, ...] = SPECS,
    with_server_answers: bool = True,
) -> Corpus:
    """Record every spec through the models into a plaintext and an encrypted cache, plus the
    planted variants (plaintext, sealed with a key not held) of each key."""
    key, other_key = generate_key(), generate_key()
    setenv(KEY_ENV, key)
    setenv(OTHER_KEY_ENV, other_key)
    workdir.mkdir(parents=True, exist_ok=True)
    toml = workdir / "spark.toml"
    toml.write_text(SPARK_TOML, encoding="utf-8")
    configs = {
        "plain": CacheConfig(enabled=True, cache_dir=workdir / "plain"),
        "sealed": CacheConfig(
            enabled=True, cache_dir=workdir / "sealed", encrypt=True, key_env=KEY_ENV
        ),
    }
    inject_plain = CacheConfig(enabled=True, cache_dir=workdir / "inject-plain")
    inject_other = CacheConfig(
        enabled=True, cache_dir=workdir / "inject-other", encrypt=True, key_env=OTHER_KEY_ENV
    )
    for config in configs.values():
        for spec in specs:
            model = make_model(server, spec.provider, config, spec.model_id)
            try:
                if spec.kind == "tools":
                    server.queue_tool_call("get_weather", TOOL_ARGUMENTS, provider=spec.provider)
                await call_model(model, spec)
            finally:
                await close_model(model)
    server_answers: dict[str, Any] = {}
    if with_server_answers:
        uncached = CacheConfig(enabled=False)
        for spec in specs:
            model = make_model(server, spec.provider, uncached, spec.model_id)
            try:
                server_answers[spec.name] = await call_model(model, spec)
            finally:
                await close_model(model)
    CacheManager.reset_instances()

    caches = []
    planted: dict[str, dict[str, bytes]] = {}
    for label, config in configs.items():
        manager = CacheManager(config.resolved_dir, config)
        entries = []
        for spec in specs:
            request = spec.cache_request(manager, config)
            path = entry_path(config.resolved_dir, spec.provider, spec.model_id, request.key)
            assert path.is_file(), f"{spec.name}: no entry at {path} after recording"
            entry = Entry(spec, request, path, path.read_bytes(), {})
            entry.original = await read_original(config, request)
            if spec.name not in planted:
                injected = injected_answer(request, spec.name)
                planted[spec.name] = {
                    "foreign-key": await plant(inject_other, request, injected),
                    "plaintext": await plant(inject_plain, request, injected),
                }
            entry.planted["foreign-key"] = planted[spec.name]["foreign-key"]
            if config.encrypt:
                entry.planted["plaintext"] = planted[spec.name]["plaintext"]
            entries.append(entry)
        caches.append(FuzzCache(label, config, entries, key if config.encrypt else None))
    # the twin of each entry in the other cache (same request, same answer, other sealing)
    plain, sealed = caches
    for mine, theirs in zip(plain.entries, sealed.entries, strict=True):
        mine.planted["sealed-twin"] = theirs.pristine
        theirs.planted["plain-twin"] = mine.pristine
    # a recorded run that used every entry, for `spark cache prune --unused`
    for cache in caches:
        manager = CacheManager(cache.root, cache.config)
        for entry in cache.entries:
            await manager.get_or_call(entry.request, ProviderStub(None), cache.config)
        manager.write_usage_record()
    CacheManager.reset_instances()
    return Corpus(workdir, toml, caches, server_answers)


def stored_answer(index: int) -> dict[str, Any]:
    """An answer with every field the contract checks (text, a tool call, usage, cost)."""
    return {
        "text": f"stored answer {index}",
        "tool_calls": [
            {
                "id": f"call_{index}",
                "name": "get_weather",
                "arguments": {"city": "Paris", "units": {"temp": ["C", "F"]}},
            }
        ],
        "finish_reason": "tool_calls",
        "usage": {"input_tokens": 10, "output_tokens": 20},
        "cost_usd": 0.001,
    }


async def seed_cache(
    label: str,
    config: CacheConfig,
    prompts: list[str],
    *,
    fernet_key: str | None = None,
    provider: str = "openai",
    model_id: str = GPT,
) -> FuzzCache:
    """Entries written through ``CacheManager.get_or_call`` (fast; no SDK), one per prompt:
    what ``model.generate(prompt)`` of that provider and model reads."""
    manager = CacheManager(config.resolved_dir, config)
    entries = []
    for index, prompt in enumerate(prompts):
        spec = Spec(f"{label}-{index}", provider, model_id, "text", prompt)
        request = spec.cache_request(manager, config)
        await manager.get_or_call(request, ProviderStub(stored_answer(index)), config)
        path = entry_path(config.resolved_dir, provider, model_id, request.key)
        entry = Entry(spec, request, path, path.read_bytes(), {})
        entry.original = await read_original(config, request)
        entries.append(entry)
    return FuzzCache(label, config, entries, fernet_key)


# -- JSON with raw pieces ---------------------------------------------------------------------


class Raw(bytes):
    """Bytes spliced verbatim into serialized JSON (NaN, deep nesting, invalid UTF-8...)."""


DELETE = object()  # a mutation value: remove the field
HUGE = 10**400  # a 401-digit integer
DEEP_LIST = Raw(b"[" * 2000 + b"]" * 2000)
DEEP_DICT = Raw(b'{"a":' * 2000 + b"1" + b"}" * 2000)
LONG = "A" * 100_000

HOSTILE: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    2,
    1.5,
    -0.0,
    1e308,
    -1e308,
    "",
    "x",
    "1.2.3",
    "none",
    "fernet",
    [],
    {},
    ["a"],
    {"a": 1},
    [1, 2],
    HUGE,
    -HUGE,
    Raw(b"NaN"),
    Raw(b"Infinity"),
    Raw(b"-Infinity"),
    Raw(b"1e999"),
    DEEP_LIST,
    DEEP_DICT,
    LONG,
    Raw(b'"\xff\xfe\xc3\x28"'),
    Raw(b'"\xed\xa0\x80"'),  # an encoded surrogate
)


def dumps(value: Any) -> bytes:
    """Compact JSON as Spark writes it, with ``Raw`` values spliced in."""
    raws: list[Raw] = []

    def marked(item: Any) -> Any:
        if isinstance(item, Raw):
            raws.append(item)
            return f"@@RAW{len(raws) - 1}@@"
        if isinstance(item, dict):
            return {k: marked(v) for k, v in item.items()}
        if isinstance(item, list):
            return [marked(v) for v in item]
        return item

    out = json.dumps(marked(value), separators=(",", ":"), ensure_ascii=False).encode()
    for index, raw in enumerate(raws):
        out = out.replace(f'"@@RAW{index}@@"'.encode(), bytes(raw), 1)
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_or_none(data: bytes) -> Any:
    """Strict JSON (no NaN or Infinity), or None."""
    try:
        return json.loads(data, parse_constant=_no_constants)
    except Exception:  # any failure: not JSON we can reason about
        return None


# -- the mutation generator -------------------------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    """Bytes to put at an entry path, and what may be served from them."""

    kind: str
    detail: str
    data: bytes
    alt: dict[str, Any] | None = None  # a changed but valid answer that may be served instead
    time_only: bool = False  # only created_at/expires_at changed (to numbers): may expire

    def describe(self) -> str:
        return f"{self.kind} ({self.detail}; {len(self.data)} bytes)"


_PAYLOAD_MARK = b',"payload":'
_TIME_FIELDS = frozenset({"created_at", "expires_at"})


class Target:
    """What the generator knows about one entry: its bytes, envelope, payload and neighbours."""

    def __init__(self, cache: FuzzCache, entry: Entry) -> None:
        self.entry = entry
        self.sealed_cache = cache.sealed
        self.pristine = entry.pristine
        self.envelope: dict[str, Any] = json.loads(entry.pristine)
        self.others = [e for e in cache.entries if e is not entry]
        self.fernet = Fernet(cache.fernet_key) if cache.fernet_key else None
        self.sealed = isinstance(self.envelope.get("payload"), str)
        cut = entry.pristine.rfind(_PAYLOAD_MARK)
        self.head = entry.pristine[:cut] if cut > 0 else b""
        self.payload_bytes = entry.pristine[cut + len(_PAYLOAD_MARK) : -1] if cut > 0 else b""
        if self.sealed:
            assert self.fernet is not None
            self.payload = json.loads(self.fernet.decrypt(self.envelope["payload"].encode()))
        else:
            self.payload = self.envelope["payload"]
        # the digest of a plaintext payload, found by its value (the field name is not fixed)
        digest = hashlib.sha256(self.payload_bytes).hexdigest().encode()
        self.digest = digest if not self.sealed and digest in self.head else None

    def with_payload(self, payload: Any, *, keep_digest: bool = True) -> bytes:
        """This envelope around another payload: resealed with the cache's key when sealed, and
        with a digest recomputed (when the format has one) unless ``keep_digest`` is False."""
        body = dumps(payload)
        if self.sealed:
            assert self.fernet is not None
            token = self.fernet.encrypt(body).decode()
            return self.head + _PAYLOAD_MARK + dumps(token) + b"}"
        head = self.head
        if keep_digest and self.digest is not None:
            head = head.replace(self.digest, hashlib.sha256(body).hexdigest().encode())
        return head + _PAYLOAD_MARK + body + b"}"

    def with_envelope(self, **changes: Any) -> bytes:
        """The envelope re-serialized with fields changed (``DELETE`` removes one, a new name is
        added); unless the payload is what changes, its bytes (and digest) stay as stored."""
        envelope = {}
        for name, value in self.envelope.items():
            new = changes.get(name, value)
            if new is not DELETE:
                envelope[name] = new
        for name, value in changes.items():
            if name not in self.envelope and value is not DELETE:
                envelope[name] = value
        if "payload" in changes or "payload" not in envelope or not self.head:
            return dumps(envelope)
        rest = {name: value for name, value in envelope.items() if name != "payload"}
        return dumps(rest)[:-1] + _PAYLOAD_MARK + self.payload_bytes + b"}"


def _flip_bits(rng: random.Random, data: bytes, count: int) -> bytes:
    out = bytearray(data)
    for _ in range(count):
        index = rng.randrange(len(out))
        out[index] ^= 1 << rng.randrange(8)
    return bytes(out)


def _response_paths(target: Target) -> list[tuple[Any, ...]]:
    response = target.payload["response"]
    paths: list[tuple[Any, ...]] = [(name,) for name in response]
    paths += [("usage", name) for name in response.get("usage") or {}]
    for index, call in enumerate(response.get("tool_calls") or []):
        paths += [("tool_calls", index)] + [("tool_calls", index, name) for name in call]
        paths += [("tool_calls", index, "arguments", name) for name in call.get("arguments", {})]
    if response.get("embeddings"):
        paths += [("embeddings", 0), ("embeddings", 0, 0), ("embeddings", 1, 2)]
    if response.get("chunks"):
        paths += [("chunks", 0), ("chunks", len(response["chunks"]) - 1)]
    paths += [("text",), ("tool_calls",), ("usage",), ("cost_usd",), ("extra_field",)]
    return paths


def _set_path(document: Any, path: tuple[Any, ...], value: Any) -> bool:
    """Set (or delete) ``path`` in ``document``; False when the path does not exist."""
    *parents, last = path
    node = document
    for step in parents:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(node, dict):
        if value is DELETE:
            return node.pop(last, DELETE) is not DELETE
        node[last] = value
        return True
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
        return True
    return False


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _is_amount(value: Any) -> bool:
    if type(value) not in (int, float):
        return False
    try:
        return math.isfinite(value) and value >= 0
    except OverflowError:
        return False


def _is_vector(value: Any) -> bool:
    return type(value) is list and all(
        type(v) in (int, float) and _is_amount(abs(v)) for v in value
    )


def valid_response(response: Any, embedding: bool) -> bool:
    """The contract's shape of an answer (docs/caching.md): what may ever be served.

    Text a string, usage a map of non-negative int counts, tool calls well formed (a string id
    and name, arguments a map), cost a finite non-negative number or null; vectors of finite
    numbers; chunks strings. Other fields are not constrained.
    """
    if type(response) is not dict:
        return False
    checks: dict[str, Callable[[Any], bool]] = {
        "text": lambda v: type(v) is str,
        "usage": lambda v: type(v) is dict and all(map(_is_count, v.values())),
        "tool_calls": lambda v: (
            type(v) is list
            and all(
                type(c) is dict
                and type(c.get("id")) is str
                and type(c.get("name")) is str
                and type(c.get("arguments", {})) is dict
                for c in v
            )
        ),
        "cost_usd": _is_amount,
        "embeddings": lambda v: type(v) is list and all(map(_is_vector, v)),
        "chunks": lambda v: type(v) is list and all(type(c) is str for c in v),
    }
    for name, check in checks.items():
        if response.get(name) is not None and not check(response[name]):
            return False
    return not embedding or type(response.get("embeddings")) is list


_VALID_RAW = (b"1e999", b"-1e999")  # JSON numbers (out of a double's range: they parse as inf)


def _is_pure_json(value: Any) -> bool:
    """No Raw piece that makes the file not JSON (NaN, Infinity, invalid UTF-8) or that Python's
    parser cannot read back (nesting 2,000 deep): such a file is corrupt wherever the piece is."""
    if isinstance(value, Raw):
        return bytes(value) in _VALID_RAW
    if isinstance(value, dict):
        return all(map(_is_pure_json, value.values()))
    if isinstance(value, list):
        return all(map(_is_pure_json, value))
    return True


def _m_bitflip(rng: random.Random, t: Target) -> tuple[str, bytes]:
    count = rng.choice((1, 1, 1, 2, 3))
    return f"{count} bit(s)", _flip_bits(rng, t.pristine, count)


def _m_byte(rng: random.Random, t: Target) -> tuple[str, bytes]:
    index = rng.randrange(len(t.pristine))
    value = rng.choice((0, 0x22, 0x5C, 0x7B, 0x7D, 0x80, 0xFF, rng.randrange(256)))
    out = bytearray(t.pristine)
    out[index] = value
    return f"byte {index} = {value:#x}", bytes(out)


def _m_truncate(rng: random.Random, t: Target) -> tuple[str, bytes]:
    size = rng.choice((0, 1, rng.randrange(len(t.pristine)), len(t.pristine) - 1))
    return f"first {size} bytes", t.pristine[:size]


def _m_append(rng: random.Random, t: Target) -> tuple[str, bytes]:
    tail = rng.choice(
        (b"}", b",", b"\x00", b"\n", b" ", b'{"format":2}', t.pristine, bytes(rng.randbytes(9)))
    )
    return f"+{tail[:12]!r}", t.pristine + tail


def _m_splice(rng: random.Random, t: Target) -> tuple[str, bytes]:
    start = rng.randrange(len(t.pristine))
    end = min(len(t.pristine), start + rng.randrange(1, 64))
    if rng.random() < 0.5:
        return f"cut {start}:{end}", t.pristine[:start] + t.pristine[end:]
    return f"doubled {start}:{end}", t.pristine[:end] + t.pristine[start:]


def _m_invalid_utf8(rng: random.Random, t: Target) -> tuple[str, bytes]:
    bad = rng.choice((b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xf0\x28\x8c\xbc", b"\xc0\xaf", b"\x80"))
    # inside a string: after a quote that opens one
    quotes = [i for i, byte in enumerate(t.pristine) if byte == 0x22]
    index = rng.choice(quotes) + 1
    return f"{bad!r} at {index}", t.pristine[:index] + bad + t.pristine[index:]


def _m_envelope_type(rng: random.Random, t: Target) -> tuple[str, bytes]:
    name = rng.choice(list(t.envelope))
    value = rng.choice(HOSTILE)
    return f"{name} = {_short(value)}", t.with_envelope(**{name: value})


def _m_envelope_drop(rng: random.Random, t: Target) -> tuple[str, bytes]:
    name = rng.choice(list(t.envelope))
    return f"no {name}", t.with_envelope(**{name: DELETE})


def _m_envelope_extra(rng: random.Random, t: Target) -> tuple[str, bytes]:
    if rng.random() < 0.5:
        value = rng.choice(HOSTILE)
        return f"extra field = {_short(value)}", t.with_envelope(zz_extra=value)
    name = rng.choice([n for n in t.envelope if n != "payload"])
    other = rng.choice(t.others)
    value = json.loads(other.pristine).get(name)
    duplicate = b"{" + dumps({name: value})[1:-1] + b"," + t.pristine[1:]
    return f"duplicate {name} first", duplicate


def _m_envelope_other(rng: random.Random, t: Target) -> tuple[str, bytes]:
    """key, provider or model_id of another entry (the payload bytes untouched)."""
    other = rng.choice(t.others)
    theirs = json.loads(other.pristine)
    name = rng.choice(("key", "provider", "model_id"))
    if theirs.get(name) == t.envelope.get(name):
        name = "key"
    return f"{name} of {other.name}", t.with_envelope(**{name: theirs[name]})


def _m_other_entry(rng: random.Random, t: Target) -> tuple[str, bytes]:
    other = rng.choice(t.others)
    return f"file of {other.name}", other.pristine


def _m_other_rekeyed(rng: random.Random, t: Target) -> tuple[str, bytes]:
    """Another request's whole entry, its metadata edited to say it is this one."""
    other = rng.choice(t.others)
    theirs = json.loads(other.pristine)
    data = other.pristine.replace(theirs["key"].encode(), t.envelope["key"].encode())
    if rng.random() < 0.5:
        for name in ("provider", "model_id"):
            old = dumps({name: theirs[name]})[1:-1]
            data = data.replace(old, dumps({name: t.envelope[name]})[1:-1], 1)
        return f"{other.name} rekeyed and moved", data
    return f"{other.name} rekeyed", data


def _m_other_payload(rng: random.Random, t: Target) -> tuple[str, bytes]:
    """This envelope around another request's payload (digest recomputed or not)."""
    other = rng.choice(t.others)
    keep = rng.random() < 0.7
    detail = f"payload of {other.name}" + (" redigested" if keep else "")
    return detail, t.with_payload(_payload_of(t, other), keep_digest=keep)


def _payload_of(t: Target, entry: Entry) -> Any:
    envelope = json.loads(entry.pristine)
    if isinstance(envelope["payload"], str):
        assert t.fernet is not None
        return json.loads(t.fernet.decrypt(envelope["payload"].encode()))
    return envelope["payload"]


def _m_request_edit(rng: random.Random, t: Target) -> tuple[str, bytes]:
    payload = copy.deepcopy(t.payload)
    request = payload["request"]
    choice = rng.randrange(5)
    if choice == 0:
        request["model"] = request.get("model", "") + "-edited"
        detail = "request model edited"
    elif choice == 1:
        request["zz_param"] = 1
        detail = "request parameter added"
    elif choice == 2:
        payload["request"] = rng.choice(HOSTILE)
        detail = f"request = {_short(payload['request'])}"
    elif choice == 3:
        payload["request"] = _payload_of(t, rng.choice(t.others))["request"]
        detail = "request of another entry"
    else:
        request["namespace"] = "someone-else"
        detail = "request namespace edited"
    return detail, t.with_payload(payload)


def _m_payload_shape(rng: random.Random, t: Target) -> tuple[str, bytes, Any]:
    payload = copy.deepcopy(t.payload)
    choice = rng.randrange(4)
    if choice == 0:
        payload = rng.choice(HOSTILE)
        detail = f"payload = {_short(payload)}"
    elif choice == 1:
        del payload[rng.choice(("request", "response"))]
        detail = "payload without request or response"
    elif choice == 2:
        payload["response"] = rng.choice(HOSTILE)
        detail = f"response = {_short(payload['response'])}"
    else:
        payload["zz_extra"] = rng.choice(HOSTILE)
        detail = f"payload extra = {_short(payload['zz_extra'])}"
    return detail, t.with_payload(payload), payload


_RESPONSE_VALUES: tuple[Any, ...] = (*HOSTILE, DELETE, "3", [1], [None], [{"id": 1}], [["a"]])


def _m_response_type(rng: random.Random, t: Target) -> tuple[str, bytes, Any]:
    payload = copy.deepcopy(t.payload)
    path = rng.choice(_response_paths(t))
    value = rng.choice(_RESPONSE_VALUES)
    if not _set_path(payload["response"], path, value):
        payload["response"][path[0]] = value if value is not DELETE else None
    detail = f"response{''.join(f'[{p!r}]' for p in path)} = {_short(value)}"
    return detail, t.with_payload(payload), payload


def _m_deep(rng: random.Random, t: Target) -> tuple[str, bytes]:
    deep = rng.choice((DEEP_LIST, DEEP_DICT))
    where = rng.randrange(3)
    if where == 0:
        name = rng.choice(list(t.envelope))
        return f"envelope {name} 2000 deep", t.with_envelope(**{name: deep})
    payload = copy.deepcopy(t.payload)
    if where == 1:
        payload["request"]["messages"] = deep
        return "request 2000 deep", t.with_payload(payload)
    payload["response"][rng.choice(("text", "usage", "tool_calls", "zz_extra"))] = deep
    return "response field 2000 deep", t.with_payload(payload)


def _m_number(rng: random.Random, t: Target) -> tuple[str, bytes]:
    """Huge and non-finite numbers in every numeric place."""
    value = rng.choice((HUGE, -HUGE, Raw(b"NaN"), Raw(b"Infinity"), Raw(b"1e999"), Raw(b"-1e999")))
    if rng.random() < 0.5:
        name = rng.choice(("format", "created_at", "expires_at"))
        return f"{name} = {_short(value)}", t.with_envelope(**{name: value})
    payload = copy.deepcopy(t.payload)
    path = rng.choice(
        [p for p in _response_paths(t) if p[0] in ("usage", "cost_usd", "embeddings")]
    )
    if not _set_path(payload["response"], path, value):
        payload["response"]["cost_usd"] = value
    return f"response{list(path)} = {_short(value)}", t.with_payload(payload)


def _m_token(rng: random.Random, t: Target) -> tuple[str, bytes]:
    token = t.envelope["payload"]
    index = rng.randrange(len(token))
    choice = rng.randrange(4)
    if choice == 0:
        new = token[:index] + "é" + token[index + 1 :]
        detail = "non-ASCII character in the token"
    elif choice == 1:
        data = t.pristine
        at = data.index(token.encode()) + index
        return "byte 0x80 in the token", data[:at] + b"\x80" + data[at + 1 :]
    elif choice == 2:
        alphabet = string.ascii_letters + string.digits + "-_"
        new = token[:index] + rng.choice(alphabet.replace(token[index], "")) + token[index + 1 :]
        detail = "one token character changed"
    else:
        new = token[: rng.randrange(len(token))]
        detail = "token cut short"
    return detail, t.with_envelope(payload=new)


def _m_planted(rng: random.Random, t: Target) -> tuple[str, bytes]:
    name = rng.choice(sorted(t.entry.planted))
    return name, t.entry.planted[name]


def _m_downgrade(rng: random.Random, t: Target) -> tuple[str, bytes]:
    """Format 1 (the digest dropped); old entries stay readable."""
    changes: dict[str, Any] = {"format": 1}
    if t.digest is not None:
        for name, value in t.envelope.items():
            if isinstance(value, str) and t.digest.decode() in value:
                changes[name] = DELETE
    return "format 1", t.with_envelope(**changes)


def _m_time(rng: random.Random, t: Target) -> tuple[str, bytes]:
    created = t.envelope.get("created_at")
    base = created if isinstance(created, int | float) else 1.7e9
    name = rng.choice(("created_at", "expires_at"))
    value = rng.choice((None, 0, 1.0, base - 10**7, base + 10**7, base - 1, base + 1e9))
    return f"{name} = {value}", t.with_envelope(**{name: value})


def _m_reformat(rng: random.Random, t: Target) -> tuple[str, bytes]:
    return "pretty-printed", json.dumps(t.envelope, indent=rng.choice((1, 2, 4))).encode()


_FAMILIES: tuple[tuple[str, int, Callable[..., Any]], ...] = (
    ("bitflip", 12, _m_bitflip),
    ("byte", 5, _m_byte),
    ("truncate", 6, _m_truncate),
    ("append", 3, _m_append),
    ("splice", 3, _m_splice),
    ("invalid-utf8", 4, _m_invalid_utf8),
    ("envelope-type", 14, _m_envelope_type),
    ("envelope-drop", 3, _m_envelope_drop),
    ("envelope-extra", 3, _m_envelope_extra),
    ("envelope-other", 5, _m_envelope_other),
    ("other-entry", 3, _m_other_entry),
    ("other-rekeyed", 5, _m_other_rekeyed),
    ("other-payload", 5, _m_other_payload),
    ("request-edit", 4, _m_request_edit),
    ("payload-shape", 4, _m_payload_shape),
    ("response-type", 16, _m_response_type),
    ("deep-nesting", 3, _m_deep),
    ("huge-number", 4, _m_number),
    ("token", 6, _m_token),
    ("planted", 6, _m_planted),
    ("downgrade", 2, _m_downgrade),
    ("time", 3, _m_time),
    ("reformat", 2, _m_reformat),
)
KINDS: tuple[str, ...] = tuple(name for name, _, _ in _FAMILIES)


def mutate(rng: random.Random, target: Target) -> Mutation:
    """One mutation of ``target``'s file: different bytes, with what may be served from them."""
    families = [
        f
        for f in _FAMILIES
        if (f[0] != "token" or target.sealed) and (f[0] != "planted" or target.entry.planted)
    ]
    weights = [weight for _, weight, _ in families]
    for _ in range(50):
        kind, _, make = rng.choices(families, weights)[0]
        made = make(rng, target)
        detail, data = made[0], made[1]
        if data == target.pristine:
            continue
        alt = _alternative(made[2], target) if len(made) > 2 else None
        return Mutation(kind, detail, data, alt, _time_only(data, target))
    raise AssertionError("no mutation changed the file")


def _alternative(payload: Any, target: Target) -> dict[str, Any] | None:
    """The changed response of a payload resealed with the cache's key (or, plaintext, with its
    digest recomputed), when it still answers the same request in a valid shape: such an edit
    cannot be told from a real answer (plaintext authenticates nothing), so it may be served."""
    if not isinstance(payload, dict) or not _is_pure_json(payload):
        return None
    if payload.get("request") != target.payload["request"] or "response" not in payload:
        return None
    response = payload["response"]
    if not valid_response(response, target.entry.spec.kind == "embedding"):
        return None
    return loads_or_none(dumps(response))


def _time_only(data: bytes, target: Target) -> bool:
    document = loads_or_none(data)
    if not isinstance(document, dict):
        return False
    envelope = target.envelope
    changed = document.keys() ^ envelope.keys()
    changed |= {k for k in document.keys() & envelope.keys() if document[k] != envelope[k]}
    if not changed or not changed <= _TIME_FIELDS:
        return False
    for name in changed & document.keys():
        value = document[name]
        if value is None and name == "expires_at":
            continue
        if type(value) not in (int, float) or not _is_amount(abs(value)):
            return False
    return True


def _short(value: Any) -> str:
    if value is DELETE:
        return "<deleted>"
    if isinstance(value, Raw):
        return f"raw {bytes(value[:12])!r}{'...' if len(value) > 12 else ''}"
    if isinstance(value, int) and abs(value) > 10**20:
        return f"{len(str(abs(value)))}-digit int"
    text = repr(value)
    return text if len(text) <= 30 else text[:27] + "..."


# -- the CLI ----------------------------------------------------------------------------------

# What a CLI run must never print: a crash, and raw characters that act on a terminal (file
# names and entry data are shown escaped: test_terminal_output.py).
CLI_BAD_TEXT = (
    "Traceback",
    "a bug in Spark",
    "unexpected ",
    "\x1b",
    "\x07",
    "\r",
    "\x9b",
    "\u202e",
)


def run_cli(
    *args: str, input: str | None = None, env: Mapping[str, str] | None = None
) -> tuple[Result, list[str]]:
    """``spark ARGS`` in-process (click's CliRunner on ``spark.cli.cli``, the group that
    ``spark.cli.main`` runs), and what is wrong with how it ended (empty: a clean run)."""
    runner = CliRunner(env=dict(env or {}))
    result = runner.invoke(cli, list(args), input=input, catch_exceptions=True)
    problems = []
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        text = "".join(traceback.format_exception(result.exception))
        problems.append(f"raised {type(result.exception).__name__}: {text[-1500:]}")
    if result.exit_code not in (0, 1):
        problems.append(f"exit code {result.exit_code}")
    output = result.stdout + result.stderr
    problems += [f"printed {bad!r}: {output[-800:]}" for bad in CLI_BAD_TEXT if bad in output]
    return result, problems


def verify_named(result: Result) -> set[Path]:
    """The files a ``spark cache verify --json`` run names as bad."""
    report = json.loads(result.stdout)
    return {Path(p["path"]).resolve() for p in report["problems"]}


# -- the oracle -------------------------------------------------------------------------------


@dataclass
class Case:
    number: int
    cache: FuzzCache
    entry: Entry
    mutation: Mutation

    def describe(self) -> str:
        return (
            f"case {self.number} [{self.cache.label} {self.entry.name}] "
            f"{self.mutation.describe()} at {self.entry.path}"
        )


@dataclass
class Report:
    """What a fuzz run found. Every list but ``reads`` must end up empty."""

    cases: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    exceptions: list[str] = field(default_factory=list)
    wrong_answers: list[str] = field(default_factory=list)
    verify_misses: list[str] = field(default_factory=list)  # unusable, but verify said OK
    verify_false_alarms: list[str] = field(default_factory=list)  # named, but served
    replay_problems: list[str] = field(default_factory=list)
    not_replaced: list[str] = field(default_factory=list)
    cli_problems: list[str] = field(default_factory=list)
    model_problems: list[str] = field(default_factory=list)
    bad_stats: list[str] = field(default_factory=list)  # get_stats() sums not finite
    slow_reads: list[str] = field(default_factory=list)
    reads: list[float] = field(default_factory=list)
    verified_cases: int = 0
    model_cases: int = 0
    cli_runs: int = 0

    def failures(self) -> dict[str, list[str]]:
        return {
            name: getattr(self, name)
            for name in (
                "exceptions",
                "wrong_answers",
                "verify_misses",
                "verify_false_alarms",
                "replay_problems",
                "not_replaced",
                "cli_problems",
                "model_problems",
                "bad_stats",
                "slow_reads",
            )
            if getattr(self, name)
        }

    def failure_text(self, limit: int = 8) -> str:
        lines = []
        for name, items in self.failures().items():
            lines.append(f"{name}: {len(items)}")
            lines += [f"  - {item}" for item in items[:limit]]
        return "\n".join(lines)

    def summary(self) -> str:
        total = sum(self.cases.values())
        lines = [f"{total} cases", "cases by mutation kind:"]
        lines += [f"  {kind:<16} {count}" for kind, count in sorted(self.cases.items())]
        lines.append("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())))
        if self.reads:
            lines.append(
                f"time per read: median {statistics.median(self.reads) * 1e3:.3f} ms, "
                f"max {max(self.reads) * 1e3:.1f} ms"
            )
        lines.append(
            f"checked by verify: {self.verified_cases} cases; through the models: "
            f"{self.model_cases}; CLI runs: {self.cli_runs}"
        )
        lines.append(f"exceptions to the caller: {len(self.exceptions)}")
        lines.append(f"wrong or injected answers: {len(self.wrong_answers)}")
        lines.append(f"verify misses (bad files verify did not name): {len(self.verify_misses)}")
        lines.append(f"verify false alarms (named, yet served): {len(self.verify_false_alarms)}")
        lines.append(f"replay problems: {len(self.replay_problems)}")
        lines.append(f"bad files not replaced by the next write: {len(self.not_replaced)}")
        lines.append(f"CLI problems: {len(self.cli_problems)}")
        lines.append(f"model API problems: {len(self.model_problems)}")
        lines.append(f"get_stats() with sums not finite: {len(self.bad_stats)}")
        lines.append(f"slow reads: {len(self.slow_reads)}")
        return "\n".join(lines)


def _exception(where: str, case: Case | None, exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    what = case.describe() if case is not None else ""
    return f"{where}: {what}: {type(exc).__name__}: {exc!s:.300}\n{text[-2000:]}"


class Fuzzer:
    """Runs rounds of mutations over a corpus: each round puts one mutated file at every entry
    path of both caches, checks them, then restores the recorded files."""

    def __init__(
        self,
        corpus: Corpus,
        seed: int,
        *,
        server: Any = None,
        verify_every: int = 0,
        commands_every: int = 0,
        rotate_every: int = 0,
        model_every: int = 0,
        slow_read_s: float = 2.0,
    ) -> None:
        self.corpus = corpus
        self.rng = random.Random(seed)
        self.server = server
        self.verify_every = verify_every
        self.commands_every = commands_every
        self.rotate_every = rotate_every
        self.model_every = model_every
        self.slow_read_s = slow_read_s
        self.report = Report()
        self.targets = {
            (cache.label, entry.name): Target(cache, entry)
            for cache in corpus.caches
            for entry in cache.entries
        }
        self._serial = 0
        self._rounds = 0
        self._managers: dict[tuple[str, str], CacheManager] = {}
        self._bad_sums: set[str] = set()

    def _manager(self, cache: FuzzCache, role: str) -> CacheManager:
        """One manager per cache and role for the whole run: each round reads every key once
        per role, and ``_restore`` drops every key from their memory tiers (``remove_entry``), so
        each read goes to the file, as a fresh manager's would (and no manager is left behind:
        a run makes no more of them than it needs)."""
        manager = self._managers.get((cache.label, role))
        if manager is None:
            manager = CacheManager(cache.root, self._config(cache, role))
            self._managers[(cache.label, role)] = manager
        return manager

    @staticmethod
    def _config(cache: FuzzCache, role: str) -> CacheConfig:
        return replace(cache.config, mode="replay") if role == "replay" else cache.config

    async def run(self, cases: int) -> Report:
        while sum(self.report.cases.values()) < cases:
            await self.round(cases - sum(self.report.cases.values()))
        return self.report

    async def round(self, budget: int) -> None:
        number = self._rounds
        self._rounds += 1
        pairs = [(c, e) for c in self.corpus.caches for e in c.entries]
        self.rng.shuffle(pairs)
        cases = []
        for cache, entry in pairs[:budget]:
            mutation = mutate(self.rng, self.targets[(cache.label, entry.name)])
            cases.append(Case(sum(self.report.cases.values()) + len(cases), cache, entry, mutation))
        for case in cases:
            write_file(case.entry.path, case.mutation.data)
        named: dict[str, set[Path]] = {}
        if self.verify_every and number % self.verify_every == 0:
            for cache in self.corpus.caches:
                named[cache.label] = self._verify(cache)
        if self.commands_every and number % self.commands_every == 0:
            self._read_commands(cases)
        for case in cases:
            self.report.cases[case.mutation.kind] += 1
            await self._check(case, named.get(case.cache.label))
        if self.commands_every and number % self.commands_every == 0:
            self._writing_commands(
                rotate=bool(self.rotate_every) and number % self.rotate_every == 0
            )
        self._restore()

    def _restore(self) -> None:
        for cache in self.corpus.caches:
            for entry in cache.entries:
                for role in ("rw", "again", "replay"):
                    manager = self._managers.get((cache.label, role))
                    if manager is not None:
                        manager.remove_entry(entry.request.key)
                write_file(entry.path, entry.pristine)

    # -- one case -----------------------------------------------------------------------------

    async def _check(self, case: Case, named: set[Path] | None) -> None:
        entry, mutation = case.entry, case.mutation
        write_file(entry.path, mutation.data)  # (an earlier case's cleanup may have removed it)
        replay = await self._replay(case)
        if self.model_every and self.server is not None and case.number % self.model_every == 0:
            write_file(entry.path, mutation.data)
            await self._through_model(case)
        write_file(entry.path, mutation.data)
        outcome = await self._engine(case)
        if outcome is None:
            return
        self.report.outcomes[outcome] += 1
        served = outcome in ("original", "alt")
        if replay is not None:
            self._judge_replay(case, replay, served)
        if named is not None and not mutation.time_only:
            self.report.verified_cases += 1
            is_named = entry.path.resolve() in named
            if not served and not is_named:
                self.report.verify_misses.append(f"{case.describe()}: a miss, verify said OK")
            if served and is_named:
                self.report.verify_false_alarms.append(f"{case.describe()}: served {outcome}")

    def _answer_kind(self, case: Case, response: Any, fresh: Any) -> str:
        if response == case.entry.original:
            return "original"
        if fresh is not None and response == fresh:
            return "fresh"
        if case.mutation.alt is not None and response == case.mutation.alt:
            return "alt"
        return "WRONG"

    async def _engine(self, case: Case) -> str | None:
        """read_write through ``CacheManager`` (a fresh one: the disk path), then the admin
        calls; after a miss the bad file must have been replaced by the fresh answer."""
        cache, entry = case.cache, case.entry
        self._serial += 1
        fresh = fresh_answer(entry.request, self._serial)
        provider = ProviderStub(fresh)
        manager = self._manager(cache, "rw")
        try:
            start = time.perf_counter()
            result = await manager.get_or_call(entry.request, provider, cache.config)
            elapsed = time.perf_counter() - start
        except Exception as exc:
            self.report.exceptions.append(_exception("get_or_call", case, exc))
            return None
        self.report.reads.append(elapsed)
        if elapsed > self.slow_read_s:
            self.report.slow_reads.append(f"{case.describe()}: {elapsed:.2f} s")
        response = dict(result.response)
        outcome = self._answer_kind(case, response, fresh)
        consistent = (outcome == "fresh") == (provider.calls == 1 and not result.cached)
        if outcome == "WRONG" or not consistent or provider.calls > 1:
            self.report.wrong_answers.append(
                f"{case.describe()}: served {_short(response)} (cached={result.cached}, "
                f"provider calls={provider.calls})"
            )
            return "WRONG"
        for name, call in (
            ("has_entry", lambda: manager.has_entry(entry.request.key)),
            ("cleanup_expired", manager.cleanup_expired),
            ("get_stats", manager.get_stats),
        ):
            try:
                value = call()
            except Exception as exc:
                self.report.exceptions.append(_exception(name, case, exc))
                continue
            if (
                name == "get_stats"
                and not _finite_stats(value)
                and cache.label not in self._bad_sums
            ):
                self._bad_sums.add(cache.label)  # (reported once: the sums stay broken after)
                self.report.bad_stats.append(f"{case.describe()}: get_stats() = {value}")
        if outcome == "fresh":
            again = self._manager(cache, "again")
            try:
                second = await again.get_or_call(entry.request, ProviderStub(None), cache.config)
            except Exception as exc:
                self.report.not_replaced.append(_exception("get_or_call after a miss", case, exc))
            else:
                if dict(second.response) != fresh:
                    self.report.not_replaced.append(f"{case.describe()}: read {second.response}")
        return outcome

    async def _replay(self, case: Case) -> tuple[str, Any] | None:
        cache, entry = case.cache, case.entry
        config = self._config(cache, "replay")
        provider = ProviderStub(None)
        try:
            result = await self._manager(cache, "replay").get_or_call(
                entry.request, provider, config
            )
        except SparkError as exc:
            return "error", exc
        except Exception as exc:
            self.report.exceptions.append(_exception("replay get_or_call", case, exc))
            return None
        finally:
            if provider.calls:
                self.report.replay_problems.append(f"{case.describe()}: replay called the provider")
        return "served", dict(result.response)

    def _judge_replay(self, case: Case, replay: tuple[str, Any], served: bool) -> None:
        what, value = replay
        if what == "served":
            kind = self._answer_kind(case, value, None)
            if kind == "WRONG":
                self.report.wrong_answers.append(
                    f"{case.describe()}: replay served {_short(value)}"
                )
            elif not served and not case.mutation.time_only:
                self.report.replay_problems.append(
                    f"{case.describe()}: replay served it, read_write did not"
                )
            return
        if served and not case.mutation.time_only:
            self.report.replay_problems.append(
                f"{case.describe()}: read_write served it, replay refused: {value}"
            )
        elif (
            not served
            and not case.mutation.time_only
            and not names_path(str(value), case.entry.path)
        ):
            self.report.replay_problems.append(
                f"{case.describe()}: replay error does not name the file: "
                f"{type(value).__name__}: {value!s:.400}"
            )

    async def _through_model(self, case: Case) -> None:
        """The same file read by a model (its own fresh manager) against the local server."""
        self.report.model_cases += 1
        spec, cache = case.entry.spec, case.cache
        CacheManager.reset_instances()
        model = make_model(self.server, spec.provider, cache.config, spec.model_id)
        before = self.server.count()
        try:
            got = await call_model(model, spec)
        except Exception as exc:
            self.report.exceptions.append(_exception(f"model {spec.kind}", case, exc))
            return
        finally:
            await close_model(model)
            CacheManager.reset_instances()
        asked = self.server.count() - before
        candidates = [] if asked else [case.entry.original, case.mutation.alt]
        if asked:
            candidates.append(self.corpus.server_answers[spec.name])
        expected = [as_public(spec, c) for c in candidates if c is not None]
        try:
            public = as_public(spec, got)
        except Exception as exc:  # a result the caller cannot even use
            public = ("unusable", f"{type(exc).__name__}: {exc}")
        if public not in expected or asked > 1:
            self.report.model_problems.append(
                f"{case.describe()}: the model returned {_short(public)} "
                f"(provider requests: {asked})"
            )

    # -- the CLI --------------------------------------------------------------------------

    def _cli(self, cache: FuzzCache, command: str, *args: str, **kw: Any) -> Result:
        base = ["--config", str(self.corpus.toml), "cache", command, "--profile", cache.label]
        result, problems = run_cli(*base, "--dir", str(cache.root), *args, **kw)
        self.report.cli_runs += 1
        self.report.cli_problems += [
            f"spark cache {command} {' '.join(args)}: {p}" for p in problems
        ]
        return result

    def _verify(self, cache: FuzzCache) -> set[Path]:
        args = ["--json"] + (["--require-encrypted"] if cache.sealed else [])
        result = self._cli(cache, "verify", *args)
        try:
            return verify_named(result)
        except (ValueError, KeyError, TypeError) as exc:
            self.report.cli_problems.append(
                f"verify --json output unreadable ({exc}): {result.output}"
            )
            return set()

    def _read_commands(self, cases: list[Case]) -> None:
        for cache in self.corpus.caches:
            mine = [c for c in cases if c.cache is cache]
            self._cli(cache, "ls")
            self._cli(cache, "ls", "--json")
            self._cli(cache, "stats", "--json")
            if mine:
                case = self.rng.choice(mine)
                self._cli(cache, "show", case.entry.request.key)
                self._cli(cache, "show", case.entry.request.key[:12], "--json")
                request = case.entry.spec.explain_json()
                if request is not None:
                    self._cli(cache, "explain", request)

    def _writing_commands(self, rotate: bool) -> None:
        for cache in self.corpus.caches:
            self._cli(cache, "cleanup")
            self._cli(cache, "prune", "--unused", "--yes")
            if rotate:
                copy_dir = self.corpus.workdir / f"rotate-{cache.label}"
                shutil.rmtree(copy_dir, ignore_errors=True)
                shutil.copytree(cache.root, copy_dir, symlinks=True)
                base = ["--config", str(self.corpus.toml), "cache", "rotate-key"]
                _, problems = run_cli(
                    *base, "--profile", "sealed", "--dir", str(copy_dir),
                    "--new-key-env", NEW_KEY_ENV, "--yes",
                    env={NEW_KEY_ENV: generate_key()},
                )  # fmt: skip
                self.report.cli_runs += 1
                self.report.cli_problems += [f"spark cache rotate-key: {p}" for p in problems]
                shutil.rmtree(copy_dir, ignore_errors=True)


def as_public(spec: Spec, value: Any) -> Any:
    """A model call's result (or a stored response dict) in one comparable form."""
    if isinstance(value, list):  # streamed chunks
        if not all(type(chunk) is str for chunk in value):
            return ("chunks that are not text", repr(value)[:200])
        return ("stream", "".join(value))
    if isinstance(value, dict):
        if spec.kind == "embedding":
            value = EmbeddingResponse.from_dict(value, cached=False)
        elif spec.kind == "stream":
            return ("stream", "".join(value.get("chunks") or [value.get("text") or ""]))
        else:
            value = ModelResponse.from_dict(value, cached=False)
    if isinstance(value, EmbeddingResponse):
        return ("embedding", value.embeddings, value.usage)
    if isinstance(value, ModelResponse):
        calls = [(c.id, c.name, dict(c.arguments)) for c in value.tool_calls]
        return ("chat", value.text, calls, value.finish_reason, value.usage)
    return ("unknown", repr(value))


def _finite_stats(stats: Any) -> bool:
    if not isinstance(stats, dict):
        return False
    for name in ("saved_cost_usd", "spent_cost_usd", "hit_rate"):
        value = stats.get(name)
        if value is not None and not (isinstance(value, int | float) and math.isfinite(value)):
            return False
    return isinstance(stats.get("total_entries"), int)
