"""The `inferstack` command: validate a spec, plan it offline, print its JSON Schema.

Exit codes: 0 ok, 2 bad input (the spec, a flag, a path). A user mistake prints
``file:line: path: message`` lines on stderr, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console

from inferstack import __version__
from inferstack.errors import SpecError
from inferstack.spec.loader import LoadedSpec, load_spec
from inferstack.spec.models import DeploymentSpec

EXIT_BAD_INPUT = 2


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _load(path: str) -> LoadedSpec:
    try:
        loaded = load_spec(path)
    except SpecError as error:
        console = _err()
        for line in error.render().splitlines():
            console.print(f"[red]error[/]: {line}", markup=True, highlight=False)
        console.print(f"{len(error.findings)} error(s) in {path}; nothing was planned.")
        sys.exit(EXIT_BAD_INPUT)
    for warning in loaded.warnings:
        _err().print(f"[yellow]{warning.render(loaded.path)}[/]")
    return loaded


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="inferstack")
def main() -> None:
    """Infrastructure as code for AI inference stacks: one typed spec per environment."""


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
def validate(spec: str) -> None:
    """Check a spec: its shape, residency, GPU facts and whether the model fits."""
    loaded = _load(spec)
    click.echo(f"{spec}: ok ({len(loaded.spec.targets)} target(s), stack {loaded.stack})")


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Also write the JSON plan here.")
@click.option("--stack", help="Stack name (default: the spec file's name, as in stacks/<stack>.yaml).")
def plan(spec: str, fmt: str, out: str | None, stack: str | None) -> None:
    """Run the Pulumi program offline under mocks and show every resource it would create."""
    from inferstack.offline.engine import run_program
    from inferstack.offline.report import print_plan

    loaded = _load(spec)
    result = run_program(loaded, stack)
    if out:
        Path(out).write_text(result.dumps(), encoding="utf-8")
    if fmt == "json":
        click.echo(result.dumps(), nl=False)
    else:
        print_plan(result, Console(highlight=False, soft_wrap=False))


@main.command()
def schema() -> None:
    """Print the spec's JSON Schema, for editors (yaml-language-server) and CI checks."""
    click.echo(json.dumps(DeploymentSpec.model_json_schema(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
