"""The request fields of google-genai's Gemini calls, and where each one goes (docs/models.md,
"Gemini"): the tables the translation reads. Data only."""

from __future__ import annotations

__all__ = [
    "CLIENT_SIDE",
    "CONFIG_FIELDS",
    "CONSTRUCTOR",
    "EMBED_CONFIG_FIELDS",
    "FLOATS",
    "HTTP_OPTIONS",
    "INTS",
    "MODEL_NAMES",
    "NEUTRAL_NAMES",
    "OPAQUE_CONFIG",
    "REFUSED",
    "TOOL_FIELDS",
    "TOP_LEVEL",
    "TRANSPORT",
    "UNKEYED",
]

#: Every field of ``google.genai.types.GenerateContentConfig`` (google-genai 3.x); a test
#: checks this against the installed SDK.
CONFIG_FIELDS = frozenset(
    {
        "audio_timestamp", "audio_transcription_config", "automatic_continuation",
        "automatic_function_calling", "cached_content", "candidate_count", "continuation_token",
        "enable_enhanced_civic_answers", "frequency_penalty", "generation_output_config",
        "http_options", "image_config", "labels", "logprobs", "max_output_tokens",
        "media_resolution", "model_armor_config", "model_selection_config", "presence_penalty",
        "response_json_schema", "response_logprobs", "response_mime_type", "response_modalities",
        "response_schema", "routing_config", "safety_settings", "seed", "service_tier",
        "should_return_http_response", "speech_config", "stop_sequences", "store",
        "system_instruction", "temperature", "thinking_config", "tool_config", "tools", "top_k",
        "top_p",
    }
)  # fmt: skip
#: Every field of ``google.genai.types.EmbedContentConfig``.
EMBED_CONFIG_FIELDS = frozenset(
    {
        "audio_track_extraction", "auto_truncate", "document_ocr", "http_options", "mime_type",
        "output_dimensionality", "task_type", "title",
    }
)  # fmt: skip

#: Where the SDK puts each field in API-key mode: in ``generationConfig`` unless listed here.
TOP_LEVEL = frozenset(
    {"system_instruction", "safety_settings", "tools", "tool_config", "labels", "cached_content",
     "service_tier", "continuation_token", "store"}
)  # fmt: skip
#: Sent, but they cannot change the answer (tracing, billing tier, request logging).
UNKEYED = frozenset({"labels", "service_tier", "store"})
#: Client-side: the SDK never sends them (Spark's tools are declarations: nothing to run).
CLIENT_SIDE = frozenset({"automatic_function_calling", "automatic_continuation", "http_options"})
#: Opaque values: keyed as given (the SDK transforms them, so their spellings are not unified).
OPAQUE_CONFIG = frozenset(
    {"response_schema", "response_json_schema", "labels", "continuation_token"}
)
#: The SDK refuses these in API-key mode (Vertex AI only), or they stop Spark reading the answer.
REFUSED = {
    **dict.fromkeys(
        ("routing_config", "model_selection_config", "audio_timestamp", "model_armor_config",
         "generation_output_config", "mime_type", "auto_truncate", "document_ocr",
         "audio_track_extraction"),
        "is only supported on Vertex AI; GeminiModel uses the Gemini API (API key)",
    ),
    "should_return_http_response": "would return the raw HTTP response, which Spark cannot cache",
}  # fmt: skip
#: Numbers the SDK's field types make floats, and ints.
FLOATS = frozenset({"temperature", "top_p", "top_k", "presence_penalty", "frequency_penalty"})
INTS = frozenset({"candidate_count", "max_output_tokens", "seed", "logprobs"})
#: Spark's own spellings, and the config field each one sets.
NEUTRAL_NAMES = {
    "max_tokens": "max_output_tokens",
    "stop": "stop_sequences",
    "n": "candidate_count",
    "system_prompt": "system_instruction",
    "tool_choice": "tool_config",
    "tool_specs": "tools",
    "reasoning_effort": "thinking_config",
    "response_format": "response_json_schema",
    "output_schema": "response_json_schema",
}
#: Per-call transport settings (not keyed); ``timeout`` is in seconds.
TRANSPORT = frozenset({"timeout", "request_timeout", "headers", "extra_headers"})
#: The fields of ``http_options`` a call may set.
HTTP_OPTIONS = frozenset({"timeout", "headers", "retry_options", "extra_body"})
#: Constructor settings (and fields Gemini has no place for), refused per call.
CONSTRUCTOR = frozenset(
    {"api_key", "base_url", "client", "max_retries", "retries", "organization", "project",
     "region", "location", "vertexai", "credentials", "user", "metadata", "stream"}
)  # fmt: skip
#: Spellings of the model id, which belongs to the constructor.
MODEL_NAMES = frozenset({"model", "model_id", "modelId", "models"})
#: The fields of a ``types.Tool`` (Gemini's own tools, snake case).
TOOL_FIELDS = frozenset(
    {"function_declarations", "google_search", "google_search_retrieval", "code_execution",
     "url_context", "retrieval", "file_search", "google_maps", "computer_use",
     "enterprise_web_search", "mcp_servers", "parallel_ai_search", "exa_ai_search"}
)  # fmt: skip
