"""The ``spark`` program itself: entry points, --version/--help, and the one error handler."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import click
import pytest
from click.testing import CliRunner, Result

from spark import __version__
from spark.cli import cli
from spark.cli._docs import command_paths

Invoke = Callable[..., Result]


def _spark_program() -> list[str]:
    """The installed ``spark`` script of this interpreter's environment (else ``-m spark``)."""
    found = shutil.which("spark", path=str(Path(sys.executable).parent)) or shutil.which("spark")
    return [found] if found else [sys.executable, "-m", "spark"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_spark_program(), *args],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_installed_entry_point(project: Path) -> None:
    version = _run("--version", cwd=project)
    assert version.returncode == 0
    assert version.stdout == f"spark, version {__version__}\n"
    validate = _run("config", "validate", cwd=project)
    assert validate.returncode == 0, validate.stderr
    assert validate.stdout == f"OK: {project / 'spark.toml'} (profile dev, 2 models)\n"


def test_installed_entry_point_errors_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "spark.toml").write_text('[cache]\nmode = "sometimes"\n')
    result = _run("config", "validate", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: invalid Spark configuration (1 problem):\n")
    assert "Traceback" not in result.stderr
    usage = _run("cache", "frobnicate", cwd=tmp_path)
    assert usage.returncode == 2
    assert "No such command 'frobnicate'" in usage.stderr


def test_python_dash_m_spark(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "spark", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: spark [OPTIONS] COMMAND [ARGS]...")


def test_version_and_help(spark: Invoke) -> None:
    assert spark("--version").stdout == f"spark, version {__version__}\n"
    top = spark("--help").stdout
    for group in ("config", "cache", "ask", "demo"):
        assert f"\n  {group} " in top


def test_every_command_has_help(spark: Invoke) -> None:
    paths = list(command_paths())
    assert {" ".join(path) for path in paths} == {
        "",
        "ask",
        "demo",
        "config",
        *(f"config {verb}" for verb in ("validate", "show", "init")),
        "cache",
        *(
            f"cache {verb}"
            for verb in (
                "stats",
                "ls",
                "show",
                "clear",
                "cleanup",
                "verify",
                "keygen",
                "explain",
                "prune",
                "report",
                "rotate-key",
                "migrate",
            )
        ),
    }
    for path in paths:
        result = spark(*path, "--help")
        assert result.exit_code == 0, path
        assert "Usage: spark" in result.stdout
    for path in paths[1:]:
        command: click.Command = cli
        for name in path:
            assert isinstance(command, click.Group)
            found = command.get_command(click.Context(command), name)
            assert found is not None
            command = found
        assert command.help, path
        assert all(p.help for p in command.params if isinstance(p, click.Option)), path


def test_unexpected_errors_are_one_line_unless_traceback_is_asked_for(
    spark: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr("spark.cli.config.render_default_toml", broken)
    result = spark("config", "init")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: unexpected RuntimeError: boom (a bug in Spark;")
    with pytest.raises(RuntimeError, match="boom"):
        spark("--traceback", "config", "init")


def test_os_errors_are_one_line(spark: Invoke, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = spark("config", "init", "--path", str(tmp_path / "file" / "spark.toml"))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert str(tmp_path / "file") in result.stderr
    assert len(result.stderr.splitlines()) <= 2
    assert "Traceback" not in result.output


@pytest.mark.parametrize("no_color", ["", "1"])
def test_no_color_turns_off_the_colour_of_errors_and_warnings(project: Path, no_color: str) -> None:
    """https://no-color.org: with NO_COLOR set (any value) nothing is coloured, even on a
    terminal (``color=True`` stands for one); without it errors are red, warnings yellow."""
    runner = CliRunner()
    env = {"NO_COLOR": no_color or None}
    error = runner.invoke(cli, ["cache", "ls", "--provider", "opnai"], color=True, env=env)
    warning = runner.invoke(cli, ["config", "validate", "--profile", "ci"], color=True, env=env)
    assert error.exit_code == 1
    assert "error: unknown provider 'opnai'" in error.stderr
    assert warning.exit_code == 0
    assert "warning: profile ci: encryption is on" in warning.stderr
    for result in (error, warning):
        assert ("\x1b[" in result.stderr) is not bool(no_color), result.stderr


def _read_until(stream: IO[bytes] | None, text: bytes, seconds: float = 30) -> bytes:
    """What a process wrote to ``stream`` up to and including ``text`` (read as it comes)."""
    assert stream is not None
    seen = b""
    deadline = time.monotonic() + seconds
    while text not in seen:
        assert time.monotonic() < deadline, f"no {text!r} in {seen!r}"
        ready, _, _ = select.select([stream], [], [], 0.1)
        if ready:
            chunk = os.read(stream.fileno(), 4096)
            assert chunk, f"the process ended before {text!r}: {seen!r}"
            seen += chunk
    return seen


@pytest.mark.parametrize("where", ["during a call", "at a prompt"])
def test_ctrl_c_exits_130_with_one_line(
    project: Path, fill: Callable[..., list[str]], where: str
) -> None:
    """Ctrl-C is the shell's status 130 from every command, whether it stops work in hand or a
    question (click's own is 1 and "Aborted!"), and never a traceback."""
    if where == "during a call":
        args, wait_for, on_stderr = ["demo", "-n", "2", "--latency", "3"], b"miss", False
    else:
        fill(1)
        args, wait_for, on_stderr = ["cache", "clear"], b"[y/N]", True
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [*_spark_program(), *args],
        cwd=project,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        seen = _read_until(process.stderr if on_stderr else process.stdout, wait_for)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    stderr = (seen if on_stderr else b"") + stderr
    assert process.returncode == 130, stderr
    assert stderr.decode().strip().splitlines()[-1] == "error: interrupted (Ctrl-C)"
    assert b"Traceback" not in stderr
