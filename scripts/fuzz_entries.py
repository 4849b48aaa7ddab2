"""Fuzz the cache's entry reader: a longer run of the fuzzer of ``tests/integrity``.

Records real entries (plaintext and encrypted; text, tool call, stream, embedding; OpenAI,
Bedrock, Gemini) through the models against a local ``spark.testing.ProviderServer``, then
puts one mutated file at every entry path per round and reads each through the engine API in
this process (``CacheManager.get_or_call`` in read_write and replay mode, ``has_entry``,
``cleanup_expired``, ``get_stats``), with ``spark cache verify`` (and the other commands) every
few rounds. The mutation generator and the oracle are the ones of the test suite
(``tests/integrity/_fuzzlib.py``, loaded by path).

    python scripts/fuzz_entries.py --cases 20000 --seed 7

Prints cases by mutation kind, exceptions to the caller, wrong or injected answers, verify
misses and the time per read; exits 1 if anything went wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

_FUZZLIB = Path(__file__).resolve().parent.parent / "tests" / "integrity" / "_fuzzlib.py"


def load_fuzzlib() -> ModuleType:
    """The tests' fuzz module, imported from its file (one definition of the generator)."""
    spec = importlib.util.spec_from_file_location("spark_integrity_fuzzlib", _FUZZLIB)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {_FUZZLIB}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up while being defined)
    spec.loader.exec_module(module)
    return module


class _CountingHandler(logging.Handler):
    """Counts Spark's warnings instead of printing thousands of them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] += 1


def _open_descriptors() -> int | None:
    """How many descriptors this process holds (Linux), to see a leak."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _isolate() -> None:
    """No ambient Spark configuration or credentials reach the run."""
    for name in list(os.environ):
        if name.startswith(("SPARK_", "OPENAI_", "AWS_", "GOOGLE_", "GEMINI_")):
            del os.environ[name]
    os.environ.pop("ENVIRONMENT", None)


async def _main(args: argparse.Namespace) -> int:
    fuzzlib = load_fuzzlib()
    from spark.testing import ProviderServer

    with tempfile.TemporaryDirectory(prefix="spark-fuzz-") as tmp, ProviderServer() as server:
        workdir = Path(tmp)
        os.chdir(workdir)
        os.environ["HOME"] = str(workdir)
        started = time.perf_counter()
        corpus = await fuzzlib.record_corpus(
            server, workdir / "corpus", os.environ.__setitem__, with_server_answers=False
        )
        recorded = time.perf_counter() - started
        fuzzer = fuzzlib.Fuzzer(
            corpus,
            args.seed,
            verify_every=args.verify_every,
            commands_every=args.commands_every,
            rotate_every=args.rotate_every,
            slow_read_s=args.slow_read,
        )
        started, fds = time.perf_counter(), _open_descriptors()
        report = await fuzzer.run(args.cases)
        elapsed, fds_after = time.perf_counter() - started, _open_descriptors()
    print(f"seed {args.seed}: recorded {sum(len(c.entries) for c in corpus.caches)} entries in "
          f"{recorded:.1f} s, fuzzed in {elapsed:.1f} s")  # fmt: skip
    print(report.summary())
    if fds is not None and fds_after is not None:
        print(f"open file descriptors: {fds} before the cases, {fds_after} after")
    failures = report.failures()
    if failures:
        print("\nFAILURES\n" + report.failure_text(limit=args.show))
        return 1
    print("\nOK")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=20000, help="mutated files to check")
    parser.add_argument("--seed", type=int, default=20251201, help="random seed")
    parser.add_argument(
        "--verify-every", type=int, default=4, help="run `spark cache verify` every N rounds"
    )
    parser.add_argument(
        "--commands-every", type=int, default=25, help="run every other command every N rounds"
    )
    parser.add_argument(
        "--rotate-every", type=int, default=100, help="run rotate-key (on a copy) every N rounds"
    )
    parser.add_argument("--slow-read", type=float, default=2.0, help="seconds a read may take")
    parser.add_argument("--show", type=int, default=10, help="failures shown per category")
    args = parser.parse_args()
    _isolate()
    handler = _CountingHandler()
    spark_logger = logging.getLogger("spark")
    spark_logger.addHandler(handler)
    spark_logger.propagate = False
    code = asyncio.run(_main(args))
    print(f"Spark log records at WARNING or above: {dict(handler.counts)}")
    raise SystemExit(code)


if __name__ == "__main__":
    main()
