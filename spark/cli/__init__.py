"""The ``spark`` command line: noun groups (``config``, ``cache``) with verb commands.

Every error of every command is reported in one place, :class:`SparkGroup`: one ``error: ...``
line (a configuration error lists each problem on its own line) and what to do, exit code 1 —
never a traceback (``--traceback`` shows one, for bug reports).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from spark import __version__

# The modules, not their commands: `spark.cli.config` stays the module (the group is
# `spark.cli.config.config`).
from spark.cli import ask, cache, config, demo
from spark.cli._context import CliState
from spark.cli._errors import stopped_by_signal, translate
from spark.cli._output import show_library_warnings

__all__ = ["SparkGroup", "cli", "main"]


class SparkGroup(click.Group):
    """The root group: runs a command and turns whatever it raises into a clean report."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command line; ``SparkError``, ``OSError`` and the rest become ``CliError``."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # Ctrl-C: the status a shell expects of it, from every command
            raise _interrupted() from None
        except click.Abort as exc:
            if isinstance(exc.__context__, KeyboardInterrupt):  # Ctrl-C at a prompt
                raise _interrupted() from None
            raise  # end of input at a prompt: click's "Aborted!"
        except (click.ClickException, click.exceptions.Exit):
            raise  # click's own: usage errors (exit 2), --help
        except BrokenPipeError:  # `spark cache ls | head`: the reader is gone, nothing to say
            _silence_stdout()
            raise click.exceptions.Exit(1) from None
        except Exception as exc:
            state = ctx.find_object(CliState)
            if state is not None and state.traceback:
                raise
            rules, command = (state.rules, state.command) if state else (None, ())
            raise translate(exc, rules=rules, command=command) from exc


@click.group("spark", cls=SparkGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="spark")
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    type=click.Path(path_type=Path),
    help="The spark.toml to use (default: $SPARK_CONFIG, else the nearest spark.toml in the "
    "current directory or its parents).",
)
@click.option("--traceback", is_flag=True, help="Show the Python traceback of an error.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, traceback: bool) -> None:
    """Spark: one response cache in front of OpenAI, AWS Bedrock and Google Gemini.

    spark.toml declares the environment profiles (ENVIRONMENT picks one) and each model's
    cache rules. Check it with `spark config validate`, manage the cache with `spark cache`,
    try a model with `spark ask`, and see the cache at work offline with `spark demo`.
    """
    ctx.obj = CliState(config_path=config_path, traceback=traceback)
    show_library_warnings()


cli.add_command(config.config)
cli.add_command(cache.cache)
cli.add_command(ask.ask)
cli.add_command(demo.demo)


def _interrupted() -> click.ClickException:
    """Ctrl-C's report, on a line of its own (after the terminal's ``^C`` or a prompt)."""
    click.echo(err=True)
    return stopped_by_signal("SIGINT", "interrupted (Ctrl-C)")


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (e.g. captured by a test)
        pass


def main() -> None:
    """The ``spark`` entry point (also ``python -m spark``)."""
    cli.main(prog_name="spark")
