"""``spark cache report``: one self-contained HTML page about a cache."""

from __future__ import annotations

from pathlib import Path

import click

from spark.cli._context import CliState, cache_target, dir_option, pass_state, profile_option
from spark.cli._errors import CliError
from spark.cli._output import echo_json, json_option, say
from spark.reporting import collect_report_data, write_report

__all__ = ["report"]


@click.command(short_help="Write an HTML report: hit rate, dollars saved, top requests.")
@profile_option
@dir_option
@click.option(
    "--html",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="spark-cache-report.html",
    show_default=True,
    help="Where to write the page.",
)
@click.option(
    "--top",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="How many repeated requests to list.",
)
@json_option
@pass_state
def report(
    state: CliState,
    profile: str | None,
    cache_dir: Path | None,
    out_path: Path,
    top: int,
    as_json: bool,
) -> None:
    """Write one self-contained HTML page about the cache (no network needed to view it).

    Charts of the hit rate and dollars saved per day (from the ledger every process adds to),
    entries and bytes by provider and model, and the requests served from the cache most often
    (provider, model, when recorded, and the start of the question unless the cache encrypts).
    With --json, prints the same data instead.
    """
    target = cache_target(state, profile, cache_dir)
    # A directory is checked to exist (a typo is an error, not an empty report).
    source = target.manager if target.config.backend == "redis" else target.cache_dir
    encrypted = target.config.encrypt  # then no text of a request is shown, even a plaintext one
    if as_json:
        pricing = target.settings.pricing
        echo_json(collect_report_data(source, top=top, encrypted=encrypted, pricing=pricing))
        return
    try:
        path = write_report(
            source, out_path, top=top, encrypted=encrypted, pricing=target.settings.pricing
        )
    except OSError as exc:
        raise CliError(f"cannot write {out_path}: {exc}", "Choose another --html path.") from exc
    say(f"wrote {path}")
