"""Spark's pytest plugin: record a test suite's LLM calls once, replay them in CI.

Installed with Spark (entry point ``pytest11``), inert unless asked:

- ``--spark-cache=replay|record|refresh|off`` sets the cache mode of every model built from
  spark.toml during the session (``record`` = read_write: existing entries are used, new ones
  written; ``refresh`` re-asks every question, rewriting only answers that changed).
- ``@pytest.mark.spark_cache(mode=..., dir=...)`` gives one test its own mode or directory;
  the ``spark_cache`` fixture gives a test its cache directory, mode and manager.
- A replay miss fails the test with the explanation (nearest entry and the difference), not a
  traceback — also when it surfaces wrapped (in an exception group, or as the cause of another
  error). What an encrypted cache holds stays sealed in that report: the explanation names the
  fields that differ and shows digests, not text (docs/testing.md, "Replay in CI").
- With ``--spark-skip-without-key`` (or ``SPARK_SKIP_WITHOUT_KEY=1``), tests that need a cache
  key that is not set are skipped instead of failed — for forks whose CI has no secrets.
- At the end: hits, misses and entries recorded; after a recording run, which entries were
  used (for ``spark cache prune --unused``).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spark.cache import CacheManager
from spark.errors import CacheMissError, DecryptionError, EncryptionKeyError

__all__ = ["SparkCacheHandle", "spark_cache"]

MODES = {"replay": "replay", "record": "read_write", "refresh": "refresh", "off": None}
_STASH: dict[str, Any] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--spark-cache`` and ``--spark-skip-without-key``."""
    group = parser.getgroup("spark", "Spark LLM response cache")
    group.addoption(
        "--spark-cache",
        choices=sorted(MODES),
        default=None,
        help="cache mode for models built from spark.toml (default: the active profile's)",
    )
    group.addoption(
        "--spark-skip-without-key",
        action="store_true",
        default=False,
        help="skip (not fail) tests whose encrypted cache has no key (forks without secrets)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Apply ``--spark-cache`` for the whole session, through Spark's environment variables."""
    config.addinivalue_line(
        "markers", "spark_cache(mode=None, dir=None): this test's Spark cache mode or directory"
    )
    choice = config.getoption("--spark-cache")
    _STASH["choice"] = choice
    _STASH["saved_env"] = {}
    if choice is not None:
        _set_env(_mode_env(choice), _STASH["saved_env"])


def pytest_unconfigure(config: pytest.Config) -> None:
    """Restore the environment the session started with."""
    _restore_env(_STASH.pop("saved_env", {}))


def _mode_env(choice: str) -> dict[str, str]:
    mode = MODES[choice]
    if mode is None:
        return {"SPARK_ENABLE_CACHE": "false"}
    return {"SPARK_ENABLE_CACHE": "true", "SPARK_CACHE_MODE": mode}


def _set_env(values: dict[str, str], saved: dict[str, str | None]) -> None:
    for name, value in values.items():
        saved.setdefault(name, os.environ.get(name))
        os.environ[name] = value


def _restore_env(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@dataclass(frozen=True)
class SparkCacheHandle:
    """What the ``spark_cache`` fixture gives a test."""

    mode: str | None
    dir: Path | None

    def manager(self) -> CacheManager:
        """The manager of this test's cache directory (the default directory when unset)."""
        return CacheManager.get_instance(self.dir)


@pytest.fixture(autouse=True)
def _spark_cache_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    """Apply ``@pytest.mark.spark_cache(mode=..., dir=...)`` for the marked test only."""
    marker = request.node.get_closest_marker("spark_cache")
    if marker is None:
        yield
        return
    values: dict[str, str] = {}
    mode = marker.kwargs.get("mode")
    if mode is not None:
        values.update(_mode_env(mode))
    if marker.kwargs.get("dir") is not None:
        values["SPARK_CACHE_DIR"] = str(Path(marker.kwargs["dir"]).absolute())
    saved: dict[str, str | None] = {}
    _set_env(values, saved)
    try:
        yield
    finally:
        _restore_env(saved)


@pytest.fixture
def spark_cache(request: pytest.FixtureRequest) -> SparkCacheHandle:
    """This test's cache mode and directory (from the marker, the option or the environment)."""
    directory = os.environ.get("SPARK_CACHE_DIR")
    off = os.environ.get("SPARK_ENABLE_CACHE", "").lower() in ("0", "false", "no", "off")
    mode = None if off else os.environ.get("SPARK_CACHE_MODE")
    return SparkCacheHandle(mode=mode, dir=Path(directory) if directory else None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A replay miss or a missing key reads as its message, not a traceback."""
    report = yield
    excinfo = call.excinfo
    if excinfo is None or not report.failed:
        return report
    error = _spark_error(excinfo.value)
    if error is None:
        return report
    if isinstance(error, EncryptionKeyError | DecryptionError) and _skip_without_key(item):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {error}")
    else:
        # The message alone: a traceback would print the test's source and values around it.
        message = f"{type(error).__name__}: {error}"
        if error is not excinfo.value:
            top = excinfo.value
            message += f"\n(raised inside {type(top).__name__}: {top})"
        report.longrepr = message
    return report


_REPORTED = (CacheMissError, EncryptionKeyError, DecryptionError)


def _spark_error(error: BaseException) -> BaseException | None:
    """The replay miss or key error that made the test fail: ``error`` itself, or one found
    in its exception groups and causes (a few levels deep), else None."""
    pending: list[tuple[BaseException, int]] = [(error, 0)]
    seen: set[int] = set()
    while pending:
        current, depth = pending.pop(0)
        if id(current) in seen or depth > 5:
            continue
        seen.add(id(current))
        if isinstance(current, _REPORTED):
            return current
        if isinstance(current, BaseExceptionGroup):
            pending.extend((inner, depth + 1) for inner in current.exceptions)
        context = None if current.__suppress_context__ else current.__context__
        for linked in (current.__cause__, context):
            if linked is not None:
                pending.append((linked, depth + 1))
    return None


def _skip_without_key(item: pytest.Item) -> bool:
    flag = os.environ.get("SPARK_SKIP_WITHOUT_KEY", "").lower() in ("1", "true", "yes")
    return flag or bool(item.config.getoption("--spark-skip-without-key"))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Hits, misses and recorded entries of every cache used; the usage record after a record."""
    managers = [m for m in CacheManager.instances() if m.counters.hits or m.counters.misses]
    if not managers:
        return
    terminalreporter.section("Spark LLM cache")
    for manager in managers:
        counters = manager.counters
        terminalreporter.write_line(
            f"{manager.cache_dir}: {counters.hits} hits, {counters.misses} misses, "
            f"{counters.writes} entries recorded, ${counters.saved_cost_usd:.4f} saved"
        )
        if _STASH.get("choice") in ("record", "refresh") and exitstatus == 0:
            manager.write_usage_record()
            terminalreporter.write_line(
                f"  usage recorded: `spark cache prune --unused --dir {manager.cache_dir}` "
                "removes entries this run did not use"
            )
