"""`python -m spark.testing`: serve the local provider APIs until Ctrl-C.

Prints `export NAME=value` lines on stdout first; paste them into another shell (or read them
from a script) to point the OpenAI, Bedrock and Gemini SDKs at the server.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from spark.testing._state import DEFAULT_ANSWER_CHARS
from spark.testing.server import ProviderServer


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m spark.testing",
        description="Serve fake OpenAI, Bedrock Runtime and Gemini APIs on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: any free)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--answer-chars", type=int, default=DEFAULT_ANSWER_CHARS, help="answer length"
    )
    return parser.parse_args(argv)


def export_lines(env: dict[str, str]) -> list[str]:
    """Return shell `export` lines for `env`, values quoted for POSIX shells."""
    return [f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items())]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Start a server, print its environment, and serve until Ctrl-C or SIGTERM."""
    args = _parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    server = ProviderServer(latency=args.latency, answer_chars=args.answer_chars, port=args.port)
    with server:
        print("\n".join(export_lines(server.env())), flush=True)
        print(f"# spark.testing provider server on {server.url}; Ctrl-C to stop", file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
