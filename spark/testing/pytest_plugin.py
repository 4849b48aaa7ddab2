"""Spark's pytest plugin: record a test suite's LLM calls once, replay them in CI.

Installed with Spark (entry point ``pytest11``), safe by default:

- With ``ENVIRONMENT`` unset, a spark.toml that has a ``testing`` profile makes it the active
  profile for the session (the report header says which profile is active and why), so
  forgetting ``ENVIRONMENT=testing`` replays instead of calling the provider.
- ``--spark-cache=replay|record|refresh|off`` sets the cache mode of every model built from
  spark.toml during the session (``record`` = read_write: existing entries are used, new ones
  written; ``refresh`` re-asks every question, rewriting only answers that changed).
- ``@pytest.mark.spark_cache(mode=..., dir=...)`` gives one test its own mode or directory;
  the ``spark_cache`` and ``provider_server`` fixtures (``spark.testing.fixtures``) are
  registered by the plugin itself.
- A replay miss fails the test with the explanation (nearest entry and the difference), not a
  traceback — also when it surfaces wrapped (in an exception group, or as the cause of another
  error). What an encrypted cache holds stays sealed in that report: the explanation names the
  fields that differ and shows digests, not text (docs/testing.md, "Replay in CI").
- With ``--spark-skip-without-key`` (or ``SPARK_SKIP_WITHOUT_KEY=1``), tests that need a cache
  key that is not set are skipped instead of failed — for forks whose CI has no secrets.
- At the end: hits, misses and entries recorded; after a recording run, which entries were
  used (for ``spark cache prune --unused``); and, while spark.toml has a testing profile, the
  calls that reached a live provider — as a warning, with the tests, the cause and the fix,
  unless they were made to record (``spark.testing._live_calls``; docs/testing.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spark.cache import CacheManager
from spark.config import find_config_file, load_settings
from spark.errors import CacheMissError, ConfigError, DecryptionError, EncryptionKeyError
from spark.models._tally import provider_calls
from spark.reporting.money import format_usd
from spark.testing._live_calls import LiveCalls, SessionCache, summary_lines
from spark.testing.fixtures import SparkCacheHandle

__all__ = ["TESTING_PROFILE", "SparkCacheHandle"]

# Registers ``provider_server`` and ``spark_cache`` (a module already registered by a user's
# own ``pytest_plugins`` line is not registered twice).
pytest_plugins = ["spark.testing.fixtures"]

TESTING_PROFILE = "testing"
MODES = {"replay": "replay", "record": "read_write", "refresh": "refresh", "off": None}
logger = logging.getLogger("spark.testing")


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
        help="skip (not fail) tests whose encrypted cache has no key set (forks without secrets); a wrong or malformed key still fails",
    )


def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Note the provider calls made so far, before any conftest runs (a call made at import
    of one then counts)."""
    early_config.stash[_CALLS_BEFORE] = Counter(provider_calls)


def pytest_configure(config: pytest.Config) -> None:
    """Choose the session's profile and apply ``--spark-cache``, through Spark's environment
    variables (so models built with ``from_profile`` and ``spark`` subprocesses follow)."""
    config.addinivalue_line(
        "markers", "spark_cache(mode=None, dir=None): this test's Spark cache mode or directory"
    )
    choice = config.getoption("--spark-cache")
    session = _session_profile()
    saved: dict[str, str | None] = {}
    config.stash[_CHOICE] = choice
    config.stash[_SESSION] = session
    config.stash[_SAVED_ENV] = saved
    env_enable, env_mode = os.environ.get("SPARK_ENABLE_CACHE"), os.environ.get("SPARK_CACHE_MODE")
    if session.defaulted:
        _set_env({"ENVIRONMENT": TESTING_PROFILE}, saved)
    if choice is not None:
        _set_env(_mode_env(choice), saved)
    if session.path is not None and session.has_testing:
        before = config.stash.get(_CALLS_BEFORE, None)
        config.stash[_LIVE] = LiveCalls() if before is None else LiveCalls(start=before)
        config.stash[_CACHE] = _session_cache(session, choice, env_enable, env_mode)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Restore the environment the session started with."""
    _restore_env(config.stash.get(_SAVED_ENV, {}))


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Which spark.toml and profile the session uses, and what chose the profile."""
    session = config.stash.get(_SESSION, None)
    return [session.header()] if session is not None and session.path else []


@dataclass(frozen=True)
class _SessionProfile:
    """The session's spark.toml, whether it has a testing profile, and the profile chosen."""

    path: Path | None = None
    has_testing: bool = False
    environment: str = ""  # ENVIRONMENT as the session started (stripped)

    @property
    def defaulted(self) -> bool:
        """True when the plugin, not ENVIRONMENT, makes ``testing`` the session's profile."""
        return self.has_testing and not self.environment

    @property
    def testing_active(self) -> bool:
        """True when the session runs under the testing profile."""
        return self.defaulted or self.environment == TESTING_PROFILE

    def header(self) -> str:
        """The report header line."""
        if self.defaulted:
            chosen = f"profile {TESTING_PROFILE} (ENVIRONMENT is unset: the default under pytest)"
        elif self.environment:
            chosen = f"profile {self.environment} (ENVIRONMENT)"
        else:
            chosen = "its default profile (ENVIRONMENT is unset, no testing profile)"
        return f"spark: {self.path}, {chosen}"


# This session's state: pytest may run sessions inside one process (pytester), so none of it
# is module-global.
_SESSION = pytest.StashKey[_SessionProfile]()
_CHOICE = pytest.StashKey["str | None"]()
_SAVED_ENV = pytest.StashKey[dict[str, "str | None"]]()
_CALLS_BEFORE = pytest.StashKey["Counter[str]"]()
_LIVE = pytest.StashKey[LiveCalls]()
_CACHE = pytest.StashKey[SessionCache]()


def _session_profile() -> _SessionProfile:
    """What spark.toml the session's models will find, and whether it has a testing profile.

    A spark.toml that cannot be read or validated changes nothing here: every ``from_profile``
    call then fails with its problems, so no test reaches a provider through it.
    """
    environment = os.environ.get("ENVIRONMENT", "").strip()
    try:
        path = find_config_file()
    except ConfigError:
        return _SessionProfile(environment=environment)
    if path is None:
        return _SessionProfile(environment=environment)
    return _SessionProfile(path, _has_testing_profile(path), environment)


def _has_testing_profile(path: Path) -> bool:
    """Whether ``path`` defines a testing profile (its environment variables left out: they are
    checked where models are built)."""
    try:
        load_settings(path, profile=TESTING_PROFILE, env={})
    except ConfigError:
        # Unknown, or defined with problems: the profile list of the default profile tells.
        try:
            return TESTING_PROFILE in load_settings(path, env={}).profiles
        except ConfigError as exc:
            logger.debug("spark.testing: %s has problems: %s", path, exc)
            return False
    return True


def _session_cache(
    session: _SessionProfile, choice: str | None, env_enable: str | None, env_mode: str | None
) -> SessionCache:
    """The session's ``[cache]`` rules (after the switches), to explain its live calls."""
    profile = session.environment or TESTING_PROFILE
    base = SessionCache(
        str(session.path), profile, session.testing_active, None, "", choice, env_enable, env_mode
    )
    try:
        rules = load_settings().cache_config()
    except ConfigError:  # every from_profile call fails with it: no live call comes from there
        return base
    return dataclasses.replace(base, enabled=rules.enabled, mode=rules.mode)


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
        if mode not in MODES:
            pytest.fail(
                f"@pytest.mark.spark_cache(mode={mode!r}): unknown mode;"
                f" use one of {', '.join(sorted(MODES))}",
                pytrace=False,
            )
        values.update(_mode_env(mode))
    if marker.kwargs.get("dir") is not None:
        values["SPARK_CACHE_DIR"] = str(Path(marker.kwargs["dir"]).absolute())
    saved: dict[str, str | None] = {}
    _set_env(values, saved)
    try:
        yield
    finally:
        _restore_env(saved)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """Count the provider calls of the test's setup."""
    with _counted(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Count the provider calls of the test itself."""
    with _counted(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """Count the provider calls of the test's teardown."""
    with _counted(item):
        return (yield)


@contextlib.contextmanager
def _counted(item: pytest.Item) -> Iterator[None]:
    calls = item.config.stash.get(_LIVE, None)
    cache = item.config.stash.get(_CACHE, None)
    if calls is None or cache is None:
        yield
        return
    marker = item.get_closest_marker("spark_cache")
    marker_mode = marker.kwargs.get("mode") if marker is not None else None
    records = marker_mode in ("record", "refresh") if marker_mode else cache.records
    with calls.phase(item.nodeid, records, marker_mode):
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A replay miss, a missing key or a spark.toml problem reads as its message, not a
    traceback."""
    report = yield
    excinfo = call.excinfo
    if excinfo is None or not report.failed:
        return report
    error = _spark_error(excinfo.value)
    if error is None:
        return report
    if isinstance(error, EncryptionKeyError) and error.missing and _skip_without_key(item):
        # (only a key not set at all: a wrong, stale or cut-off key fails, as it must be fixed)
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


_REPORTED = (CacheMissError, EncryptionKeyError, DecryptionError, ConfigError)


def _spark_error(error: BaseException) -> BaseException | None:
    """The replay miss, key or configuration error that made the test fail: ``error`` itself, or one found
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
    """Hits, misses and recorded entries of every cache used; the usage record after a record;
    the calls that reached a live provider while spark.toml has a testing profile."""
    managers = [m for m in CacheManager.instances() if m.counters.hits or m.counters.misses]
    live = _live_lines(config)
    if not managers and not live:
        return
    choice = config.stash.get(_CHOICE, None)
    terminalreporter.section("Spark LLM cache")
    for manager in managers:
        counters = manager.counters
        terminalreporter.write_line(
            f"{manager.cache_dir}: {counters.hits} hits, {counters.misses} misses, "
            f"{counters.writes} entries recorded, {format_usd(counters.saved_cost_usd)} saved"
        )
        if choice in ("record", "refresh") and exitstatus == 0:
            partial = _partial_run(config, terminalreporter)
            try:
                manager.write_usage_record(partial=partial)
            except OSError as exc:  # (unwritable, full, or something else at the record's path)
                terminalreporter.write_line(f"  usage not recorded: {exc}", yellow=True)
                continue
            terminalreporter.write_line(
                "  usage added to the record (part of the suite ran: it adds, never replaces)"
                if partial
                else f"  usage recorded: `spark cache prune --unused --dir {manager.cache_dir}` "
                "removes entries this run did not use"
            )
    for line, warning in live:
        terminalreporter.write_line(line, yellow=warning, bold=warning)


def _partial_run(config: pytest.Config, terminalreporter: Any) -> bool:
    """Whether the run was part of the suite: tests deselected (``-k``, ``-m``, ``--lf``) or
    paths named on the command line. Its usage adds to the record, never replaces it."""
    named = config.args_source == pytest.Config.ArgsSource.ARGS
    return named or bool(terminalreporter.stats.get("deselected"))


def _live_lines(config: pytest.Config) -> list[tuple[str, bool]]:
    """The summary's lines about calls that reached a live provider (none without a testing
    profile)."""
    calls = config.stash.get(_LIVE, None)
    cache = config.stash.get(_CACHE, None)
    if calls is None or cache is None:
        return []
    calls.close(cache.records)
    return summary_lines(calls, cache)
