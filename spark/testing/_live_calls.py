"""The provider calls of a pytest session, for the plugin's summary (docs/testing.md, "Calls
that reach a live provider").

Every call a model makes to a provider (not answered by a cache) is counted in
``spark.models._tally.provider_calls``. The plugin takes the difference over each test phase
and sorts the calls three ways:

- *local*: made while a ``ProviderServer`` ran in this process (the fake is the provider there:
  never reported);
- *recorded*: made where the cache records on purpose (``--spark-cache=record|refresh``, a
  marker's ``mode="record"|"refresh"``, or a testing profile whose mode writes);
- *unexpected*: every other one — the calls the summary warns about.

Calls made outside any test (at collection, in session fixtures) take the session's side.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from spark.models._tally import provider_calls

__all__ = ["LiveCalls", "SessionCache", "describe", "local_server_running", "summary_lines"]

_SHOWN_TESTS = 3


def local_server_running() -> bool:
    """Whether a ``ProviderServer`` serves in this process right now."""
    from spark.testing.server import ProviderServer  # (the plugin loads before any server)

    return ProviderServer.serving()


@dataclass
class _Bucket:
    calls: Counter[str] = field(default_factory=Counter)
    tests: dict[str, str | None] = field(default_factory=dict)  # node id -> its marker mode

    def add(self, made: Counter[str], nodeid: str | None, marker_mode: str | None) -> None:
        self.calls.update(made)
        if nodeid is not None:
            self.tests.setdefault(nodeid, marker_mode)


@dataclass
class LiveCalls:
    """The session's provider calls, sorted as the module docstring says."""

    start: Counter[str] = field(default_factory=lambda: Counter(provider_calls))
    local: Counter[str] = field(default_factory=Counter)
    recorded: _Bucket = field(default_factory=_Bucket)
    unexpected: _Bucket = field(default_factory=_Bucket)

    @contextmanager
    def phase(self, nodeid: str, records: bool, marker_mode: str | None) -> Iterator[None]:
        """Count the calls of one test phase (setup, call or teardown)."""
        before = Counter(provider_calls)
        local = local_server_running()
        try:
            yield
        finally:
            made = provider_calls - before
            if made:
                if local or local_server_running():
                    self.local.update(made)
                elif records:
                    self.recorded.add(made, nodeid, marker_mode)
                else:
                    self.unexpected.add(made, nodeid, marker_mode)

    def close(self, session_records: bool) -> None:
        """Give the calls made outside any test to the session's side."""
        outside = (
            provider_calls - self.start - self.local - self.recorded.calls - self.unexpected.calls
        )
        if outside:
            (self.recorded if session_records else self.unexpected).add(outside, None, None)


@dataclass(frozen=True)
class SessionCache:
    """What the session's ``[cache]`` rules are, and which setting made them so."""

    path: str  # spark.toml
    profile: str  # the active profile
    testing_active: bool
    enabled: bool | None = None  # None: the settings could not be read
    mode: str = ""
    choice: str | None = None  # --spark-cache
    env_enable: str | None = None  # SPARK_ENABLE_CACHE / SPARK_CACHE_MODE as the user set them
    env_mode: str | None = None

    @property
    def records(self) -> bool:
        """Whether the session's calls reach the provider on purpose: to record answers."""
        if self.choice in ("record", "refresh"):
            return True
        writes = bool(self.enabled) and self.mode in ("read_write", "refresh")
        return self.testing_active and writes


def describe(calls: Counter[str]) -> str:
    """``2 calls reached a live provider (openai: 2)``."""
    total = sum(calls.values())
    each = ", ".join(f"{provider}: {n}" for provider, n in sorted(calls.items()))
    return f"{total} call{'s' if total != 1 else ''} reached a live provider ({each})"


def summary_lines(calls: LiveCalls, session: SessionCache) -> list[tuple[str, bool]]:
    """The summary's lines about live calls, each with whether it is a warning."""
    lines: list[tuple[str, bool]] = []
    if calls.recorded.calls:
        why = _recording_reason(calls.recorded, session)
        lines.append((f"spark: {describe(calls.recorded.calls)} to record answers ({why})", False))
    if calls.unexpected.calls:
        bucket = calls.unexpected
        lines.append(
            (
                f"spark: {describe(bucket.calls)}, though {session.path} has a testing profile",
                True,
            )
        )
        if bucket.tests:
            lines.append((f"  in {_tests(bucket)}", True))
        because, fix = _cause(bucket, session)
        lines.append((f"  because {because}", True))
        record = "" if session.testing_active else "ENVIRONMENT=testing "
        lines.append(
            (
                f"  to replay the recorded answers instead: {fix}; to record them on purpose:"
                f" `{record}pytest --spark-cache=record`",
                True,
            )
        )
    return lines


def _tests(bucket: _Bucket) -> str:
    names = list(bucket.tests)
    shown = ", ".join(names[:_SHOWN_TESTS])
    more = len(names) - _SHOWN_TESTS
    return shown + (f" (and {more} more)" if more > 0 else "")


def _recording_reason(bucket: _Bucket, session: SessionCache) -> str:
    marked = [nodeid for nodeid, mode in bucket.tests.items() if mode in ("record", "refresh")]
    if marked and len(marked) == len(bucket.tests):
        mode = bucket.tests[marked[0]]
        return f'@pytest.mark.spark_cache(mode="{mode}") in {_tests(bucket)}'
    profile = "" if session.testing_active else f", profile {session.profile}"
    if session.choice in ("record", "refresh"):
        return f"--spark-cache={session.choice}{profile}"
    if session.env_mode:
        return f"SPARK_CACHE_MODE={session.env_mode}"
    return f'the testing profile\'s mode = "{session.mode}"'


def _cause(bucket: _Bucket, session: SessionCache) -> tuple[str, str]:
    """Why calls that should have been replayed were not, and what to change."""
    if not session.testing_active:
        return (
            f"ENVIRONMENT={session.profile} selects profile {session.profile}",
            "unset ENVIRONMENT (or set ENVIRONMENT=testing)",
        )
    if session.enabled is False:
        if session.choice == "off":
            return "--spark-cache=off turns the cache off", "run without --spark-cache=off"
        if session.env_enable is not None:
            return (
                f"SPARK_ENABLE_CACHE={session.env_enable} turns the cache off",
                "unset SPARK_ENABLE_CACHE",
            )
        return (
            "the testing profile's cache is disabled",
            'set enabled = true and mode = "replay" in [profiles.testing.cache]',
        )
    if session.enabled and session.mode == "read_only":
        source = (
            f"SPARK_CACHE_MODE={session.env_mode}"
            if session.env_mode
            else 'the testing profile\'s mode = "read_only"'
        )
        return f"{source} asks the provider on a miss", 'use mode = "replay"'
    marked_off = [nodeid for nodeid, mode in bucket.tests.items() if mode == "off"]
    if marked_off and len(marked_off) == len(bucket.tests):
        return (
            '@pytest.mark.spark_cache(mode="off") turns the cache off there',
            'drop mode="off" from those markers',
        )
    return (
        "those models do not use the testing profile's cache (built without"
        " spark.models.from_profile, with a cache_config of their own, or cache off)",
        "build them with spark.models.from_profile(ALIAS)",
    )
