"""Encoder for AWS event-stream frames (`application/vnd.amazon.eventstream`).

A frame is: total length and headers length (big-endian uint32), the CRC32 of those 8 bytes,
the headers, the payload, then the CRC32 of everything before it. Each header is a 1-byte name
length, the name, a value type (7 = string), a 2-byte value length and the value.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

_STRING_TYPE = 7
_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")
_TRAILER_BYTES = _CRC.size


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """Return one event-stream frame with string `headers` and raw `payload`."""
    header_bytes = b"".join(_encode_header(name, value) for name, value in headers.items())
    total = _PRELUDE.size + _CRC.size + len(header_bytes) + len(payload) + _TRAILER_BYTES
    prelude = _PRELUDE.pack(total, len(header_bytes))
    message = prelude + _CRC.pack(zlib.crc32(prelude)) + header_bytes + payload
    return message + _CRC.pack(zlib.crc32(message))


def _encode_header(name: str, value: str) -> bytes:
    name_bytes = name.encode("utf-8")
    value_bytes = value.encode("utf-8")
    return (
        struct.pack(">B", len(name_bytes))
        + name_bytes
        + struct.pack(">BH", _STRING_TYPE, len(value_bytes))
        + value_bytes
    )


def event_frame(event_type: str, payload: Any) -> bytes:
    """Return a JSON `event` frame of the given `:event-type`."""
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_frame(headers, json.dumps(payload).encode("utf-8"))


def exception_frame(exception_type: str, payload: Any) -> bytes:
    """Return a JSON `exception` frame; SDKs raise it as an error named `exception_type`."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_frame(headers, json.dumps(payload).encode("utf-8"))
