"""``spark cache verify``: every kind of bad entry is reported with its path and reason."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from spark.cache import generate_key

Invoke = Callable[..., Result]
Fill = Callable[..., list[str]]


@pytest.fixture
def encrypted(
    project: Path, fill: Fill, key_file: Callable[..., str], cache_dir: Path
) -> list[Path]:
    """Six entries sealed with the ``ci`` profile's key; their paths."""
    key_file()
    keys = fill(6, encrypt=True, key_file=project / "secrets" / "cache.key")
    return [cache_dir / "openai" / "gpt-4o-mini" / f"{key}.json" for key in keys]


def _verify(spark: Invoke, *args: str) -> tuple[Result, dict[str, str]]:
    result = spark("cache", "verify", "--profile", "ci", *args)
    reasons = {}
    for line in result.stdout.splitlines():
        if ": " in line and not line.startswith("OK"):
            path, _, reason = line.partition(": ")
            reasons[Path(path).name] = reason
    return result, reasons


def test_clean_cache_passes(spark: Invoke, encrypted: list[Path]) -> None:
    result, reasons = _verify(spark, "--require-encrypted")
    assert result.exit_code == 0, result.output
    assert reasons == {}
    assert result.stdout.startswith("OK: 6 entries in ")


def test_each_bad_entry_is_reported(
    spark: Invoke, encrypted: list[Path], fill: Fill, monkeypatch: pytest.MonkeyPatch
) -> None:
    corrupt, truncated, tampered, moved, _, _ = encrypted
    corrupt.write_text('{"format": 1, "nonsense": true}')
    truncated.write_bytes(truncated.read_bytes()[:100])
    data = tampered.read_bytes()
    index = data.index(b'"payload":"') + 40
    flipped = b"B" if data[index : index + 1] == b"A" else b"A"
    tampered.write_bytes(data[:index] + flipped + data[index + 1 :])
    misplaced = moved.with_name("f" * 64 + ".json")
    moved.rename(misplaced)
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())  # a key the ci profile does not hold
    (foreign,) = fill(1, encrypt=True, start=50)
    monkeypatch.delenv("SPARK_CACHE_KEY")
    result, reasons = _verify(spark)
    assert result.exit_code == 1
    assert reasons[corrupt.name].startswith("corrupt: not a Spark entry")
    assert reasons[truncated.name].startswith("truncated: file ends after 100 bytes")
    assert reasons[tampered.name].startswith("tampered:")
    assert reasons[misplaced.name].startswith("key mismatch: entry key")
    assert reasons[f"{foreign}.json"].startswith("unknown key: unknown key fingerprint ")
    assert len(reasons) == 5
    assert "error: 5 of 7 cache entries failed verification" in result.stderr
    assert "Traceback" not in result.output
    # paths are shown relative to the current directory, as git shows them
    assert any(line.startswith("cache/openai/gpt-4o-mini/") for line in result.stdout.splitlines())


def test_plaintext_fails_in_a_cache_that_encrypts(
    spark: Invoke, encrypted: list[Path], fill: Fill
) -> None:
    # The cache encrypts, so the engine refuses plaintext there: verify says so with or
    # without --require-encrypted (before integrity issue 10 it passed without the flag).
    (plain,) = fill(1, start=90)
    for flags in ((), ("--require-encrypted",)):
        result, reasons = _verify(spark, *flags)
        assert result.exit_code == 1
        assert reasons == {f"{plain}.json": "plaintext: payload is not encrypted"}
        # (the hint does not push sealing an entry anyone could have planted)
        assert "anyone who can write the cache can add one" in result.stderr
        assert "seal the ones you trust with `spark cache rotate-key`" in result.stderr


def test_no_key_configured(spark: Invoke, encrypted: list[Path]) -> None:
    result = spark("cache", "verify", "--profile", "vault", "--json")  # encrypts, but no key here
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["checked"] == 6
    assert {p["kind"] for p in report["problems"]} == {"no key"}


def test_sealed_only_needs_no_key_and_still_fails_plaintext_and_damage(
    spark: Invoke, encrypted: list[Path], fill: Fill
) -> None:
    """The pre-commit hook's check: a committer without the key can run it."""
    ok = spark("cache", "verify", "--profile", "vault", "--sealed-only")  # no key on this side
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith("OK: 6 entries in ")
    (plain,) = fill(1, start=90)
    encrypted[0].write_bytes(encrypted[0].read_bytes()[:100])
    bad = spark("cache", "verify", "--profile", "vault", "--sealed-only", "--json")
    assert bad.exit_code == 1
    kinds = {Path(p["path"]).name: p["kind"] for p in json.loads(bad.stdout)["problems"]}
    assert kinds == {f"{plain}.json": "plaintext", encrypted[0].name: "truncated"}


def test_edited_plaintext_request_is_a_key_mismatch(
    spark: Invoke, fill: Fill, cache_dir: Path
) -> None:
    (key,) = fill(1)
    path = cache_dir / "openai" / "gpt-4o-mini" / f"{key}.json"
    # Edited with the digest recomputed (it authenticates nothing): the stored request no
    # longer hashes to its key.
    path.write_bytes(_with_digest(path.read_bytes().replace(b"question 0", b"question 9")))
    result = spark("cache", "verify", "--json")
    assert result.exit_code == 1
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem["kind"] == "key mismatch"
    assert "stored request hashes to" in problem["reason"]


def test_edited_plaintext_without_its_digest_is_damaged(
    spark: Invoke, fill: Fill, cache_dir: Path
) -> None:
    (key,) = fill(1)
    path = cache_dir / "openai" / "gpt-4o-mini" / f"{key}.json"
    path.write_text(path.read_text().replace("question 0", "question 9"))
    result = spark("cache", "verify", "--json")
    assert result.exit_code == 1
    (problem,) = json.loads(result.stdout)["problems"]
    assert (problem["kind"], problem["reason"]) == (
        "damaged",
        "the payload does not match its digest",
    )


def _with_digest(data: bytes) -> bytes:
    """An entry whose digest is recomputed over its (edited) payload."""
    head, body = data.split(b',"payload":', 1)
    envelope = json.loads(head + b"}")
    envelope["digest"] = "sha256:" + hashlib.sha256(body[:-1]).hexdigest()
    return json.dumps(envelope, separators=(",", ":")).encode()[:-1] + b',"payload":' + body


def test_key_file_readable_by_others_is_an_error(
    spark: Invoke, encrypted: list[Path], project: Path
) -> None:
    (project / "secrets" / "cache.key").chmod(0o644)
    result = spark("cache", "verify", "--profile", "ci")
    assert result.exit_code == 1
    assert "is readable by others" in result.stderr
    assert "chmod 600" in result.stderr


@pytest.mark.parametrize(
    "place",
    [
        "openai/gpt-4o-mini/old/{key}.json",  # one folder too deep
        "openai/{key}.json",  # where model folders belong
        "openai/gpt-4o-mini/.{key}.json",  # a dot file
        "openai/gpt-4o-mini/{key}.JSON",
        ".backup/openai/gpt-4o-mini/{key}.json",  # a dot folder at the root
    ],
)
def test_a_plaintext_copy_anywhere_in_the_cache_fails_the_hook(
    spark: Invoke, encrypted: list[Path], fill: Fill, cache_dir: Path, place: str
) -> None:
    """The pre-commit hook and CI's check: a plaintext entry that a walk never reads is still
    committed with the cache, its prompt in clear text."""
    (key,) = fill(1, start=90)
    entry = cache_dir / "openai" / "gpt-4o-mini" / f"{key}.json"
    copy = cache_dir / place.format(key=key)
    copy.parent.mkdir(parents=True, exist_ok=True)
    entry.rename(copy)
    for profile, flag in (("vault", "--sealed-only"), ("ci", "--require-encrypted")):
        result = spark("cache", "verify", "--profile", profile, flag, "--json")
        assert result.exit_code == 1, (flag, result.output)
        problems = json.loads(result.stdout)["problems"]
        assert len(problems) == 1, problems
        [problem] = problems
        assert copy == Path(problem["path"]) or Path(problem["path"]) in copy.parents
        assert problem["kind"] == "refused"
        assert "committed with the cache" in problem["reason"]


def test_a_crashed_writers_temp_file_is_reported_and_kept_out_of_git(
    spark: Invoke, encrypted: list[Path], cache_dir: Path
) -> None:
    temp = encrypted[0].parent / f".{encrypted[0].stem}.999999999.d5ed3092.tmp"
    temp.write_bytes(encrypted[0].read_bytes()[:50])
    result = spark("cache", "verify", "--profile", "vault", "--sealed-only", "--json")
    assert result.exit_code == 1
    [problem] = json.loads(result.stdout)["problems"]
    assert problem["path"] == str(temp)
    assert "`spark cache cleanup`" in problem["reason"]
    # The .gitignore Spark wrote with the first entry keeps it out of a commit.
    subprocess.run(["git", "init", "-q", str(cache_dir.parent)], check=True)
    ignored = subprocess.run(
        ["git", "-c", "core.excludesFile=/dev/null", "check-ignore", "-q", str(temp)],
        cwd=cache_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ignored.returncode == 0, ignored.stderr
    assert spark("cache", "cleanup", "--profile", "vault").exit_code == 0
    assert not temp.exists()
    after = spark("cache", "verify", "--profile", "vault", "--sealed-only")
    assert after.exit_code == 0, after.output


def test_spark_bookkeeping_is_not_a_stray(
    spark: Invoke, encrypted: list[Path], cache_dir: Path
) -> None:
    (cache_dir / ".spark-summary.json").write_text("{}")
    (cache_dir / ".spark-counts").mkdir(exist_ok=True)
    assert (cache_dir / ".gitignore").exists()
    result = spark("cache", "verify", "--profile", "vault", "--sealed-only")
    assert result.exit_code == 0, result.output
