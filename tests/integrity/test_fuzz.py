"""A seeded fuzz of the entry reader: thousands of mutated files at real entry paths.

Real entries (plaintext and encrypted; text, tool call, stream, embedding; OpenAI, Bedrock,
Gemini) are recorded through the models against the local provider server; each round then
puts one mutated file at every entry path and reads each one through ``CacheManager`` (read_write
and replay; ``has_entry``, ``cleanup_expired``, ``get_stats``), through the models for a sample,
and through every CLI command for a sample of rounds. The oracle is in ``_fuzzlib`` (shared with
``scripts/fuzz_entries.py``, which runs the same fuzzer for longer).
"""

from __future__ import annotations

import logging
import random
import subprocess
import sys
from pathlib import Path

import pytest
from _fuzzlib import KINDS, FuzzCache, Fuzzer, Target, mutate, record_corpus, seed_cache

from spark.cache import CacheConfig
from spark.testing import ProviderServer

SEED = 20251201
CASES = 2800  # 200 rounds of 14 entries


async def test_fuzzed_entries_give_the_stored_answer_or_a_counted_miss(
    server: ProviderServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="spark")  # (a warning per bad file is expected)
    corpus = await record_corpus(server, tmp_path / "corpus", monkeypatch.setenv)
    fuzzer = Fuzzer(
        corpus,
        SEED,
        server=server,
        verify_every=3,  # `spark cache verify` on both caches every third round
        commands_every=20,  # ls, stats, show, explain, cleanup, prune every 20th
        rotate_every=100,  # and rotate-key on a copy of the cache, twice
        model_every=45,  # about 60 cases through the models and the real SDKs
    )

    report = await fuzzer.run(CASES)

    print(report.summary())
    assert not report.failures(), f"{report.summary()}\n\n{report.failure_text()}"
    # the run covered what it claims to
    assert set(report.cases) == set(KINDS)
    assert sum(report.cases.values()) == CASES
    assert report.verified_cases > CASES // 4
    assert report.model_cases >= 50
    assert {"original", "fresh"} <= set(report.outcomes)


def _targets(cache: FuzzCache) -> list[Target]:
    return [Target(cache, entry) for entry in cache.entries]


async def test_mutations_are_seeded_and_always_change_the_file(
    tmp_path: Path, keys: dict[str, str], sealed_config: CacheConfig, plain_config: CacheConfig
) -> None:
    plain = await seed_cache("plain", plain_config, ["a", "b", "c"])
    sealed = await seed_cache(
        "sealed", sealed_config, ["a", "b", "c"], fernet_key=keys["SPARK_INTEGRITY_KEY"]
    )
    targets = _targets(plain) + _targets(sealed)

    def run(seed: int) -> list[tuple[str, str, bytes]]:
        rng = random.Random(seed)
        made = []
        for index in range(1500):
            target = targets[index % len(targets)]
            mutation = mutate(rng, target)
            assert mutation.data != target.pristine
            # (a payload sealed again gets a new Fernet IV: its bytes differ from run to run)
            made.append((mutation.kind, mutation.detail, b"" if target.sealed else mutation.data))
        return made

    first, again, other = run(7), run(7), run(8)

    assert first == again  # a seed names a run: a failure can be replayed
    assert first != other
    kinds = {kind for kind, _, _ in first}
    assert kinds == set(KINDS) - {"planted"}  # (these entries have no planted variants)


async def test_the_generator_keeps_a_redigested_plaintext_entry_valid(
    plain_config: CacheConfig,
) -> None:
    """The digest is found by its value: an entry rebuilt around its own payload is unchanged,
    so "payload changed, digest recomputed" mutations test the shape checks, not the digest."""
    (entry,) = (await seed_cache("plain", plain_config, ["q"])).entries
    target = _targets(FuzzCache("plain", plain_config, [entry], None))[0]

    assert target.digest is not None, "no SHA-256 of the stored payload in a new plaintext entry"
    assert target.with_payload(target.payload) == entry.pristine
    assert target.with_envelope() == entry.pristine


def test_the_fuzz_script_runs_and_reports(tmp_path: Path) -> None:
    """scripts/fuzz_entries.py (the long run of this fuzzer) works: a short run of it."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "fuzz_entries.py"
    done = subprocess.run(
        [sys.executable, str(script), "--cases", "84", "--seed", "3", "--verify-every", "2"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp_path,
    )

    assert "84 cases" in done.stdout, done.stdout + done.stderr[-3000:]
    assert "exceptions to the caller: 0" in done.stdout, done.stdout
    assert "wrong or injected answers: 0" in done.stdout, done.stdout
    assert done.returncode == 0, done.stdout[-3000:]
