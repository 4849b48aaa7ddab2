"""``BedrockModel``: AWS Bedrock behind Spark's cache (Converse for text, InvokeModel for Titan
and Cohere embeddings).

boto3 is imported here only, and only when the first provider call builds the client, so a
cache hit never loads it. boto3 is synchronous: every SDK call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Unpack

from spark.errors import (
    AuthenticationError,
    BadRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
    error_class_for_status,
)
from spark.models import _bedrock_convert as convert
from spark.models._answer_checks import malformed_answer
from spark.models._bedrock_answers import (
    StreamAssembler,
    embedding_response,
    parse_converse,
    unwrap_structured,
)
from spark.models.base import Messages, Model, ModelOptions, StreamPiece
from spark.models.wire import WireCall
from spark.types import EmbeddingResponse, ModelResponse

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient


__all__ = ["BedrockModel"]

PROVIDER = convert.PROVIDER
# Titan embeds one text per request; this many requests run at once (botocore's pool holds 10).
_EMBED_CONCURRENCY = 8

# Codes that decide the class whatever the status (AWS sends some auth failures as 400).
# fmt: off
_AUTH_CODES = frozenset({
    "accessdeniedexception", "unrecognizedclientexception", "invalidsignatureexception",
    "incompletesignature", "expiredtokenexception", "missingauthenticationtokenexception",
})
# fmt: on
_THROTTLE_CODES = frozenset({"throttlingexception", "toomanyrequestsexception", "throttling"})
# In-stream exception frames carry a code but no HTTP status.
_STREAM_CODE_STATUS = {
    "validationexception": 400,
    "internalserverexception": 500,
    "serviceunavailableexception": 503,
    "modelstreamerrorexception": 424,
}


@dataclass(frozen=True)
class _ClientOptions:
    """How to build the boto3 client; ``None`` leaves a setting to boto3 (and its env vars)."""

    region: str | None = None
    endpoint_url: str | None = None
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)
    profile_name: str | None = None
    timeout: float | None = None
    max_retries: int | None = None


class BedrockModel(Model):
    """An AWS Bedrock model (``anthropic.claude-...``, ``amazon.titan-embed-text-v2:0``, ...).

    Options left ``None`` fall back to boto3's own configuration: ``AWS_REGION`` /
    ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, ``AWS_BEARER_TOKEN_BEDROCK``,
    the credential chain and ``~/.aws/config``. An injected ``client`` is used as given.
    """

    provider: ClassVar[str] = PROVIDER

    def __init__(
        self,
        model_id: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        profile_name: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        client: Any = None,
        **model_options: Unpack[ModelOptions],
    ) -> None:
        super().__init__(model_id, **model_options)
        self._options = _ClientOptions(
            region,
            endpoint_url,
            aws_access_key_id,
            aws_secret_access_key,
            aws_session_token,
            profile_name,
            timeout,
            max_retries,
        )
        self._client: BedrockRuntimeClient | None = client
        self._client_lock = threading.Lock()

    # -- the SDK, in worker threads -------------------------------------------------------

    def _sdk(self) -> BedrockRuntimeClient:
        """The client, built on first use (in a worker thread: building one takes ~50 ms)."""
        with self._client_lock:
            if self._client is None:
                self._client = _build_client(self._options)
            return self._client

    def _converse(self, kwargs: dict[str, Any]) -> Mapping[str, Any]:
        return self._sdk().converse(**kwargs)

    def _converse_stream(self, kwargs: dict[str, Any]) -> Any:
        return self._sdk().converse_stream(**kwargs)["stream"]

    def _invoke(self, body: str) -> tuple[dict[str, Any], str | None]:
        """One InvokeModel answer and the input token count Bedrock reports in its header."""
        response = self._sdk().invoke_model(
            modelId=self.model_id, body=body, contentType="application/json"
        )
        answer: dict[str, Any] = json.loads(response["body"].read())
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return answer, headers.get("x-amzn-bedrock-input-token-count")

    # -- Model ----------------------------------------------------------------------------

    def _prepare_chat(self, messages: Messages, params: Mapping[str, Any]) -> WireCall:
        return convert.prepare_chat(self.model_id, messages, params)

    def _prepare_embedding(self, texts: list[str], params: Mapping[str, Any]) -> WireCall:
        return convert.prepare_embedding(self.model_id, texts, params)

    def _cache_model_id(self) -> str:
        return convert.cache_model_id(self.model_id)

    async def _complete(self, call: WireCall) -> ModelResponse:
        with self._provider_errors():
            response = await asyncio.to_thread(self._converse, call.arguments)
        return _answer_of(parse_converse(response), call)

    async def _stream(self, call: WireCall) -> AsyncIterator[StreamPiece]:
        # Each event is read in a worker thread, one ``to_thread`` per event; the rejected
        # alternative, a reader thread feeding a queue, needs its own shutdown protocol.
        with self._provider_errors():
            stream = await asyncio.to_thread(self._converse_stream, call.arguments)
        events: Iterator[Mapping[str, Any]] = iter(stream)
        assembler = StreamAssembler(self.model_id)
        structured = _structured(call)  # the answer is the forced tool's input: no text deltas
        try:
            while True:
                with self._provider_errors(streaming=True):
                    event = await asyncio.to_thread(_next_event, events)
                if event is None:
                    break
                text = assembler.add(event)
                if text and not structured:  # tool input, reasoning, empty deltas: no chunks
                    yield text
        finally:
            stream.close()  # an abandoned stream releases its connection
        answer = _answer_of(assembler.response(), call)
        if structured and answer.text:
            yield answer.text  # the JSON answer, in one chunk
        yield answer

    async def _embed(self, call: WireCall) -> EmbeddingResponse:
        limit = asyncio.Semaphore(_EMBED_CONCURRENCY)

        async def invoke(body: str) -> tuple[dict[str, Any], str | None]:
            async with limit:
                with self._provider_errors():
                    return await asyncio.to_thread(self._invoke, body)

        bodies = call.arguments["bodies"]
        answers = await asyncio.gather(*(invoke(body) for body in bodies))
        asked = json.loads(bodies[0]) if bodies else {}
        kinds = asked.get("embeddingTypes", asked.get("embedding_types"))  # (Titan's, Cohere's)
        return embedding_response(answers, kinds[0] if isinstance(kinds, list) and kinds else None)

    # -- errors ---------------------------------------------------------------------------

    @contextmanager
    def _provider_errors(self, *, streaming: bool = False) -> Iterator[None]:
        """Translate SDK exceptions into Spark's, once, here; anything else passes through."""
        try:
            yield
        except Exception as exc:
            error = _translate(exc, self.model_id, streaming=streaming)
            if error is None:
                raise
            raise error from exc


def _next_event(events: Iterator[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    # A sentinel instead of StopIteration, which cannot cross a Future.
    return next(events, None)


def _build_client(options: _ClientOptions) -> BedrockRuntimeClient:
    """A ``bedrock-runtime`` client; only the options given override boto3's defaults."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=options.aws_access_key_id,
        aws_secret_access_key=options.aws_secret_access_key,
        aws_session_token=options.aws_session_token,
        region_name=options.region,
        profile_name=options.profile_name,
    )
    settings: dict[str, Any] = {}
    if options.timeout is not None:
        settings.update(connect_timeout=options.timeout, read_timeout=options.timeout)
    if options.max_retries is not None:
        settings["retries"] = {"total_max_attempts": options.max_retries + 1}
    # botocore reads AWS_DEFAULT_REGION and the config file, not AWS_REGION (which the other AWS
    # SDKs and Lambda use); it is the last fallback, never a made-up default region.
    region = session.region_name or os.environ.get("AWS_REGION") or None
    return session.client(
        "bedrock-runtime",
        region_name=region,
        endpoint_url=options.endpoint_url,
        config=Config(**settings),
    )


def _translate(exc: Exception, model_id: str, *, streaming: bool) -> Exception | None:
    """The Spark error for an SDK exception, or None when ``exc`` is not the SDK's.

    botocore is looked up, not imported: if it is not loaded, the SDK cannot have raised.
    """
    botocore_errors = sys.modules.get("botocore.exceptions")
    urllib3_errors = sys.modules.get("urllib3.exceptions")
    where = f"bedrock model {model_id!r}"
    if botocore_errors is None:
        return None
    parsers = sys.modules.get("botocore.parsers")
    if parsers is not None and isinstance(exc, parsers.ResponseParserError):
        return malformed_answer(PROVIDER, model_id, exc)  # an answer boto3 cannot parse
    if isinstance(exc, botocore_errors.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        cls, status = _classify_error(status, code, streaming=streaming)
        message = f"{where}: {code} (HTTP {status}): {error.get('Message', exc)}"
        return cls(message, provider=PROVIDER, status=status)
    transport: tuple[type[Exception], ...] = (
        botocore_errors.HTTPClientError,
        botocore_errors.ConnectionError,
    )
    if urllib3_errors is not None:
        transport += (urllib3_errors.HTTPError,)
    if isinstance(exc, transport):
        cls = ProviderServerError if streaming else ProviderConnectionError
        what = "the stream broke" if streaming else "cannot reach Bedrock"
        return cls(f"{where}: {what}: {exc}", provider=PROVIDER)
    if isinstance(exc, botocore_errors.BotoCoreError):
        return _local_error(exc, where, botocore_errors) or ProviderError(
            f"{where}: {exc}", provider=PROVIDER
        )
    return None


def _local_error(exc: Exception, where: str, botocore_errors: Any) -> Exception | None:
    """Errors boto3 raises before sending anything: credentials, region, parameters."""
    if isinstance(exc, botocore_errors.NoCredentialsError):
        hint = "pass aws_access_key_id/aws_secret_access_key or set AWS_* variables"
        return AuthenticationError(f"{where}: {exc} ({hint})", provider=PROVIDER)
    if isinstance(exc, botocore_errors.NoRegionError):
        hint = "pass region= or set AWS_REGION"
        return ProviderError(f"{where}: {exc} ({hint})", provider=PROVIDER)
    if isinstance(exc, botocore_errors.ParamValidationError):
        return BadRequestError(f"{where}: {exc}", provider=PROVIDER)
    return None


def _classify_error(
    status: int | None, code: str, *, streaming: bool = False
) -> tuple[type[ProviderError], int | None]:
    """The Spark error class and HTTP status for an AWS error ``code`` with HTTP ``status``.

    In-stream exception frames have a code but no status; one with no known code is a broken
    stream, hence a server error.
    """
    lowered = code.lower()
    if status is None:
        status = 429 if lowered in _THROTTLE_CODES else _STREAM_CODE_STATUS.get(lowered)
    if lowered in _AUTH_CODES:
        return AuthenticationError, status
    if lowered in _THROTTLE_CODES:
        return RateLimitError, status
    if lowered == "modeltimeoutexception":
        return ProviderConnectionError, status
    cls = error_class_for_status(status)
    if cls is ProviderError and (streaming or status == 424):
        return ProviderServerError, status  # 424: ModelErrorException, the model failed
    return cls, status


def _structured(call: WireCall) -> bool:
    """Whether the call asks for structured output through Spark's forced tool."""
    tools = call.arguments.get("toolConfig", {}).get("tools", ())
    return any(tool.get("toolSpec", {}).get("name") == convert.STRUCTURED_TOOL for tool in tools)


def _answer_of(response: ModelResponse, call: WireCall) -> ModelResponse:
    """The answer of a call; one given through Spark's structured-output tool as the JSON text
    it stands for (docs/models.md, "Structured output")."""
    return unwrap_structured(response, convert.STRUCTURED_TOOL) if _structured(call) else response
