"""OpenAI media parts (``image_url``, ``input_audio``, ``file``): bytes given in their data
field become the base64 the API reads, and the keyed body holds a digest of that base64 text
instead of the text itself (docs/models.md, "OpenAI"). Pure code.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from spark.errors import ConfigError
from spark.models.wire import base64_digest

__all__ = ["encode_media_bytes", "keyed_message"]

_INLINE_LIMIT = 256  # base64 up to this long is keyed as itself, like ``keyed_value``'s data URLs

# Part type -> the field of its object that carries base64 data (``image_url.url`` and
# ``file.file_data`` as a data URL, ``input_audio.data`` bare).
_MEDIA_FIELDS = {"image_url": "url", "input_audio": "data", "file": "file_data"}
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
)


def _media_slot(part: Any) -> tuple[str, Mapping[str, Any], str] | None:
    """A media part's type, its inner object and the name of the field holding its data."""
    kind = part.get("type") if isinstance(part, Mapping) else None
    slot = _MEDIA_FIELDS.get(kind) if isinstance(kind, str) else None
    inner = part.get(kind) if slot else None
    if slot is None or not isinstance(kind, str) or not isinstance(inner, Mapping):
        return None
    return kind, inner, slot


def encode_media_bytes(part: Mapping[str, Any]) -> dict[str, Any]:
    """A media part whose data was given as bytes, with the base64 text the API reads."""
    found = _media_slot(part)
    raw = found[1].get(found[2]) if found else None
    if found is None or not isinstance(raw, bytes | bytearray | memoryview):
        return dict(part)
    kind, inner, slot = found
    text = base64.b64encode(raw).decode("ascii")
    if kind != "input_audio":
        text = f"data:{_mime_type(bytes(raw), kind)};base64,{text}"
    return {**part, kind: {**inner, slot: text}}


def _mime_type(raw: bytes, kind: str) -> str:
    if kind == "file" and raw.startswith(b"%PDF"):
        return "application/pdf"
    if kind == "image_url":
        if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
            return "image/webp"
        for magic, mime in _IMAGE_MAGIC:
            if raw.startswith(magic):
                return mime
    raise ConfigError(
        f"cannot tell the media type of the bytes of a {kind!r} part: give a data: URL"
        " (data:<mime type>;base64,...)"
    )


def keyed_message(message: Any) -> Any:
    """A message with the base64 data of its media parts as digests."""
    mapping = type(message) is dict or isinstance(message, Mapping)
    content = message.get("content") if mapping else None
    if not isinstance(content, list):
        return message
    return {**message, "content": [_keyed_part(part) for part in content]}


def _keyed_part(part: Any) -> Any:
    """A media part with its base64 data as a digest of that text (the key holds no media)."""
    found = _media_slot(part)
    data = found[1].get(found[2]) if found else None
    if found is None or not isinstance(data, str) or len(data) <= _INLINE_LIMIT:
        return part
    if data.startswith("data:"):
        return part  # ``keyed_value`` digests data URLs
    kind, inner, slot = found
    return {**part, kind: {**inner, slot: base64_digest(data)}}
