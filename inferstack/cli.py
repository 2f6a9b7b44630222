"""The `inferstack` command: validate a spec, plan it offline, render its Kubernetes objects,
print its JSON Schema.

Exit codes: 0 ok (or advisory violations only), 1 a mandatory policy violation, 2 bad input
(the spec, a flag, a path, a plan file), 3 the policy check could not run. A user mistake
prints ``file:line: path: message`` lines on stderr, never a traceback.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.markup import escape

from inferstack import __version__, limits
from inferstack.errors import CloudCheckError, SpecError, clip, quote
from inferstack.spec.loader import LoadedSpec, load_spec

EXIT_VIOLATION = 1
EXIT_BAD_INPUT = 2
EXIT_CHECK_FAILED = 3


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _load(path: str) -> LoadedSpec:
    try:
        loaded = load_spec(path)
    except SpecError as error:
        console = _err()
        for line in error.render().splitlines():
            console.print(f"[red]error[/]: {escape(line)}", markup=True, highlight=False)
        console.print(f"{error.total} error(s) in {path}; fix them and run it again (nothing was created).")
        sys.exit(EXIT_BAD_INPUT)
    for warning in loaded.warnings:
        _err().print(f"[yellow]{escape(warning.render(loaded.path))}[/]")
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


def _bad_input(message: str) -> NoReturn:
    _err().print(f"[red]error[/]: {escape(clip(message))}")
    sys.exit(EXIT_BAD_INPUT)


def _read_json(path: str, limit: int):
    """A plan or pack config: bounded in size before parsing and in depth after (the JSON
    parser recurses per level, and so do the validators and the policy pack behind it)."""
    try:
        doc = json.loads(limits.read_bytes(path, limit).decode("utf-8"))
    except OSError as e:
        _bad_input(f"cannot read {path}: {e.strerror}")
    except limits.TooLarge as e:
        _bad_input(f"{path} is {e}; that is not a file inferstack wrote")
    except UnicodeDecodeError:
        _bad_input(f"{path} is not UTF-8 text")
    except json.JSONDecodeError as e:
        _bad_input(f"{path} is not valid JSON: {e}")
    except RecursionError:  # deeper than the parser's stack
        _too_deep(path)
    if limits.too_deep(doc):
        _too_deep(path)
    return doc


def _too_deep(path: str) -> NoReturn:
    _bad_input(f"{path} nests deeper than {limits.MAX_DEPTH} levels; that is not a file inferstack wrote")


# Pulumi's own rule for a stack name (pulumi/pulumi, validateStackName; the docs' "Stack names may
# only contain alphanumeric characters, hyphens, underscores, or periods"): a name outside it
# would put ':' or '$' into every URN of the plan, and `pulumi stack init` would refuse it anyway.
_STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def _check_stack_name(name: str, given: bool) -> None:
    if not _STACK_NAME.fullmatch(name):
        source = "--stack" if given else "the stack name (the spec file's name)"
        _bad_input(
            f"{source} {quote(name)}: a Pulumi stack name is 1 to 100 letters, digits, '-', '_' or '.'"
            + ("" if given else "; rename the file or pass --stack")
        )


def _check_writable(path: str) -> None:
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        _bad_input(f"--out {path}: the directory {parent} does not exist")


def _read_plan(path: str) -> dict:
    """A saved plan (`inferstack plan --out`), bounded in size and depth and checked for its shape."""
    from pydantic import ValidationError

    from inferstack.offline.engine import PlanDocument

    doc = _read_json(path, limits.PLAN_BYTES)
    try:
        PlanDocument.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        _bad_input(
            f"{path}: not an inferstack plan (version 1): {where}: {first['msg']}; write one with `inferstack plan --out`"
        )
    # What inferstack writes, and what the diff's markdown and the pack trust: a stack name Pulumi
    # accepts, and each resource once.
    if not _STACK_NAME.fullmatch(doc["stack"]):
        _bad_input(
            f"{path}: stack {quote(doc['stack'])} is not a Pulumi stack name; that is not a plan inferstack wrote"
        )
    twice = sorted(u for u, n in Counter(r["urn"] for r in doc["resources"]).items() if n > 1)[:1]
    if twice:
        _bad_input(f"{path}: resource {quote(twice[0])} is listed twice; that is not a plan inferstack wrote")
    return doc


def _run(loaded: LoadedSpec, stack: str | None):
    """The program run offline; what a lookup finds wrong in the cloud is bad input, exit 2."""
    from inferstack.offline.engine import run_program

    try:
        return run_program(loaded, stack)
    except CloudCheckError as error:
        _bad_input(str(error))


def _run_policy(plan_doc: dict, config: dict):
    """Run the pack over a plan; a pack that cannot run is an error, never a pass."""
    from inferstack.offline.policy import PolicyPackError, analyze

    try:
        return analyze(plan_doc, config)
    except PolicyPackError as error:
        _err().print(f"[red]error[/]: the policy check could not run: {escape(str(error))}")
        sys.exit(EXIT_CHECK_FAILED)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Also write the JSON plan here.")
@click.option("--stack", help="Stack name (default: the spec file's name, as in stacks/<stack>.yaml).")
@click.option("--skip-policy", is_flag=True, help="Do not run the policy pack (the plan says so).")
def plan(spec: str, fmt: str, out: str | None, stack: str | None, skip_policy: bool) -> None:
    """Run the Pulumi program offline under mocks, show every resource it would create, and run
    the policy pack over them. Exits 1 on a mandatory violation."""
    from inferstack.offline.report import console_for, print_plan, print_policy
    from inferstack.planning.policy_config import derive

    if out:
        _check_writable(out)
    loaded = _load(spec)
    _check_stack_name(stack or loaded.stack, given=bool(stack))
    result = _run(loaded, stack)
    report = None
    if not skip_policy:
        config = derive(loaded.spec)
        report = _run_policy(result.to_json(), config)
        result.policy = {"config": config, **report.to_json()}
    if out:
        try:
            Path(out).write_text(result.dumps(), encoding="utf-8")
        except OSError as e:
            _bad_input(f"cannot write {out}: {e.strerror}")
    if fmt == "json":
        click.echo(result.dumps(), nl=False)
    else:
        console = console_for()
        print_plan(result, console)
        if loaded.spec.traffic is not None:  # a one-line rehearsal verdict per target
            from inferstack.planning.simulation import verdict

            rehearsal = _simulate(loaded, result.resources, result.stack, None, None, 0)
            for line in (verdict(t) for t in rehearsal.targets):
                console.print(f"simulate: {line}", highlight=False)
        if report is not None:
            print_policy(report, console)
        else:
            console.print("[yellow]policy check skipped (--skip-policy)[/]")
    if report is not None and report.mandatory:
        sys.exit(EXIT_VIOLATION)


def _simulate(loaded: LoadedSpec, resources: list, stack: str, profile: str | None, csv_file: str | None, seed: int):
    """Run the rehearsal; bad traffic input is exit 2 with the reason."""
    from inferstack.planning.simulation import simulate_stack
    from inferstack.planning.traffic import TrafficError, arrivals, arrivals_from_csv, hourly_rates
    from inferstack.spec.models import Traffic

    traffic = loaded.spec.traffic or Traffic()
    unknown = sorted(set(traffic.targets) - set(loaded.spec.targets))
    if unknown:
        _bad_input(
            f"traffic.targets names {', '.join(map(quote, unknown))}, not a target of the spec "
            f"(targets: {', '.join(sorted(loaded.spec.targets))})"
        )
    try:
        if csv_file:
            arr, name = arrivals_from_csv(csv_file), Path(csv_file).name
        else:
            arr = arrivals(hourly_rates(traffic, profile), traffic.burstiness, seed)
            name = profile or ("spec hourly rates" if traffic.requests_per_hour else traffic.shape)
    except TrafficError as error:
        _bad_input(str(error))
    return simulate_stack(loaded.spec, stack, resources, arr, seed=seed, profile=name)


def _saved_plan(plan_file: str, loaded: LoadedSpec) -> tuple[list, str]:
    """A saved plan's resources, checked as `check` checks them, and for the same spec: the replica
    model and the traffic come from the spec, so a plan of another spec would mix two stacks."""
    doc = _read_plan(plan_file)
    if (doc.get("spec") or {}).get("sha256") != loaded.sha256:
        _bad_input(f"{plan_file} was planned from another version of the spec than {loaded.path}: plan it again")
    return doc["resources"], doc["stack"]


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "--profile", help="Built-in shape (steady, business-day, spike, on-off-batch) instead of the spec's traffic."
)
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False), help="CSV of arrivals: columns second[,count].")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), help="Write a plot here (.png or .svg).")
@click.option("--stack", help="Stack name (default: the spec file's name).")
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False),
    metavar="PLAN.json",
    help="Rehearse a saved plan's resources (from `inferstack plan --out`) instead of planning SPEC again.",
)
def simulate(
    spec: str,
    profile: str | None,
    csv_file: str | None,
    seed: int,
    fmt: str,
    plot_file: str | None,
    stack: str | None,
    plan_file: str | None,
) -> None:
    """Replay a day of traffic through the scaling configuration the plan would deploy: latency,
    refusals, replica-hours, cost, scaling events and findings. Nothing is created."""
    from inferstack.offline.report import console_for
    from inferstack.offline.simulate_report import plot, print_result
    from inferstack.planning.traffic import SHAPES

    if profile and csv_file:
        _bad_input("--profile and --csv each give the traffic: pass one")
    if profile and profile not in SHAPES:  # before the plan runs: the answer does not need it
        _bad_input(f"unknown traffic profile {quote(profile)}: use one of {', '.join(SHAPES)}")
    if plot_file:
        if Path(plot_file).suffix.lower() not in (".png", ".svg"):
            _bad_input(f"--plot {plot_file}: the file must end in .png or .svg")
        if not Path(plot_file).resolve().parent.is_dir():
            _bad_input(f"--plot {plot_file}: the directory {Path(plot_file).resolve().parent} does not exist")
    loaded = _load(spec)
    _check_stack_name(stack or loaded.stack, given=bool(stack))
    if plan_file:
        resources, stack_name = _saved_plan(plan_file, loaded)
    else:
        planned = _run(loaded, stack)
        resources, stack_name = planned.resources, planned.stack
    result = _simulate(loaded, resources, stack_name, profile, csv_file, seed)
    if plot_file:
        try:
            plot(result, plot_file)
        except OSError as e:
            _bad_input(f"cannot write {plot_file}: {e.strerror}")
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))
    else:
        print_result(result, console_for())


@main.command()
@click.argument("plan_file", metavar="PLAN.json", type=click.Path(dir_okay=False))
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="Policy pack config JSON (default: the config saved in the plan by `inferstack plan --out`).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def check(plan_file: str, config_file: str | None, fmt: str) -> None:
    """Run the policy pack over a saved plan, as `pulumi preview --policy-pack` would."""
    from inferstack.offline.report import console_for, print_policy

    doc = _read_plan(plan_file)
    if config_file:
        config = _read_json(config_file, limits.PACK_CONFIG_BYTES)
    elif doc.get("policy"):
        config = doc["policy"]["config"]
    else:
        _bad_input(f"{plan_file} holds no policy config: pass --config (from `inferstack policy-config SPEC`)")
    from inferstack.offline.policy import config_problems

    problems = config_problems(config)
    if problems:
        _bad_input("; ".join(problems))
    report = _run_policy(doc, config)
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        print_policy(report, console_for())
    if report.mandatory:
        sys.exit(EXIT_VIOLATION)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory to write the manifests to.")
@click.option("--stack", help="Stack name (default: the spec file's name).")
@click.option("--force", is_flag=True, help="Write into a non-empty directory, replacing its rendered YAML files.")
def render(spec: str, out: str, stack: str | None, force: bool) -> None:
    """Write the Kubernetes objects of a stack's on-prem targets from the offline plan: one YAML
    file per object, in the layout pulumi-kubernetes' render mode writes (<out>/<target>/0-crd and
    1-manifest), ready to commit for GitOps. Nothing is applied."""
    from inferstack.offline.engine import run_program
    from inferstack.offline.k8s_render import RenderError, kubernetes_objects, write

    target = Path(out)
    if target.exists() and not target.is_dir():
        _bad_input(f"--out {out}: not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        _bad_input(
            f"--out {out} is not empty: pass --force to replace the rendered files in it, or name an empty directory"
        )
    if not target.resolve().parent.is_dir():
        _bad_input(f"--out {out}: the directory {target.resolve().parent} does not exist")
    loaded = _load(spec)
    _check_stack_name(stack or loaded.stack, given=bool(stack))
    onprem = sorted(name for name, t in loaded.spec.targets.items() if t.kind == "onprem-k8s")
    if not onprem:
        _bad_input(f"{spec} has no onprem-k8s target: only on-prem targets have Kubernetes objects to render")
    try:
        planned = run_program(loaded, stack)
        objects, notes = kubernetes_objects(planned.resources)
    except (CloudCheckError, RenderError) as error:
        _bad_input(str(error))
    if not objects:
        _bad_input(f"the plan of {spec} registers no Kubernetes object (targets {', '.join(onprem)})")
    try:
        written = write(objects, target, replace=force)
    except OSError as e:
        _bad_input(f"cannot write to {out}: {e.strerror}")
    for note in notes:
        _err().print(f"[yellow]note[/]: {escape(note)}")
    targets = sorted({o.directory for o in objects})
    click.echo(f"{len(written)} object(s) written to {out} ({', '.join(f'{out}/{t}' for t in targets)})")


def _check_plot_path(plot_file: str | None) -> None:
    if not plot_file:
        return
    if Path(plot_file).suffix.lower() not in (".png", ".svg"):
        _bad_input(f"--plot {plot_file}: the file must end in .png or .svg")
    if not Path(plot_file).resolve().parent.is_dir():
        _bad_input(f"--plot {plot_file}: the directory {Path(plot_file).resolve().parent} does not exist")


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def size(spec: str, fmt: str) -> None:
    """What each cloud target's model needs, the shapes of the catalog that hold it and their
    prices, the ones ruled out and why, and the shape chosen (or pinned); what each on-prem pool
    gives a replica. Nothing is planned."""
    from inferstack.offline.report import console_for, print_sizing
    from inferstack.planning.shapes import pool_sizing, sizing_report

    loaded = _load(spec)
    report, pools = sizing_report(loaded.spec, loaded.shapes), pool_sizing(loaded.spec)
    if fmt == "json":
        doc = {"targets": [r.to_json() for r in report], "pools": [p.to_json() for p in pools]}
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print_sizing(report, pools, console_for())


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option(
    "--plot", "plot_file", type=click.Path(dir_okay=False), help="Draw cost against utilisation (.png or .svg)."
)
@click.option("--stack", help="Stack name (default: the spec file's name).")
def cost(spec: str, fmt: str, plot_file: str | None, stack: str | None) -> None:
    """What the stack costs per hour and per month for its traffic profile, and, with an on-prem
    target that states its cost, all cloud against all on-prem against the hybrid split, with the
    utilisation at which owning the GPUs breaks even. Runs the program offline; creates nothing."""
    from inferstack.offline.report import console_for, print_ownership
    from inferstack.offline.report import cost_table as table_of
    from inferstack.planning import ownership
    from inferstack.planning.cost import stack_total

    _check_plot_path(plot_file)
    loaded = _load(spec)
    _check_stack_name(stack or loaded.stack, given=bool(stack))
    planned = _run(loaded, stack)
    try:
        own, utilization = ownership.compare(loaded.spec, planned.stack)
        missing = None
    except ownership.NothingToCompare as why:
        own, utilization, missing = None, None, str(why)
    if plot_file:
        if own is None:
            _bad_input(f"--plot: {missing}")
        try:
            ownership.plot(own, plot_file, utilization)
        except OSError as e:
            _bad_input(f"cannot write {plot_file}: {e.strerror}")
    if fmt == "json":
        doc = {
            "targets": [c.to_json() for c in planned.cost],
            "total": stack_total(planned.cost),
            "ownership": None if own is None else own.to_json(utilization),
            "ownershipMissing": missing,
        }
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    console = console_for()
    console.print(table_of(planned.cost))
    print_ownership(own, utilization, missing, console)


@main.command("policy-config")
@click.argument("spec", type=click.Path(dir_okay=False))
def policy_config(spec: str) -> None:
    """Print the policy pack config derived from a spec, for `pulumi preview --policy-pack-config`."""
    from inferstack.planning.policy_config import derive

    click.echo(json.dumps(derive(_load(spec).spec), indent=2, sort_keys=True))


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--origins", is_flag=True, help="Mark each value with the file and line it was written at.")
@click.option("--full", is_flag=True, help="The validated spec, with every default filled in.")
def show(spec: str, origins: bool, full: bool) -> None:
    """Print the resolved spec: the file with the bases it `extends:` merged in, as it is validated."""
    from inferstack.spec.resolved import resolved_yaml

    if origins and full:
        _bad_input("--origins and --full: a default has no file and line; pass one of them")
    click.echo(resolved_yaml(_load(spec), origins=origins, full=full), nl=False)


@main.command()
@click.option(
    "--overlay",
    is_flag=True,
    help="The schema of an environment file that `extends:` a base: nothing required, null removes a key.",
)
def schema(overlay: bool) -> None:
    """Print the spec's JSON Schema, for editors (yaml-language-server) and CI checks."""
    from inferstack.spec.schema import spec_schema

    click.echo(json.dumps(spec_schema(overlay), indent=2, sort_keys=True))


def _diff_side(path: str, stack: str | None) -> dict:
    """One side of `diff`: a saved plan (`.json`), checked as `check` checks one, or a spec,
    planned and policy-checked as `plan` does."""
    if path.lower().endswith(".json"):
        return _read_plan(path)
    from inferstack.planning.policy_config import derive

    loaded = _load(path)
    _check_stack_name(stack or loaded.stack, given=bool(stack))
    result = _run(loaded, stack)
    config = derive(loaded.spec)
    result.policy = {"config": config, **_run_policy(result.to_json(), config).to_json()}
    return result.to_json()


@main.command()
@click.argument("base", type=click.Path(dir_okay=False))
@click.argument("head", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Write the diff here instead of stdout.")
@click.option(
    "--stack", help="Stack name for a spec given (default: the spec file's name); a saved plan keeps its own."
)
@click.option("--no-fail", is_flag=True, help="Exit 0 even when HEAD brings a mandatory violation.")
def diff(base: str, head: str, fmt: str, out: str | None, stack: str | None, no_fail: bool) -> None:
    """What changing BASE into HEAD does: resources added, removed and changed (the inputs that
    changed, secrets masked), the cost at min and max, and the policy violations HEAD brings or
    fixes. Each is a spec or a saved plan (`inferstack plan --out`). Exits 1 when HEAD has a
    mandatory violation BASE did not have."""
    from inferstack.offline import plan_diff

    if out:
        _check_writable(out)
    result = plan_diff.diff_plans(_diff_side(base, stack), _diff_side(head, stack))
    render = {"text": plan_diff.to_text, "markdown": plan_diff.to_markdown, "json": plan_diff.to_json}[fmt]
    text = render(result)
    if out:
        try:
            Path(out).write_text(text, encoding="utf-8")
        except OSError as e:
            _bad_input(f"cannot write {out}: {e.strerror}")
    else:
        click.echo(text, nl=False)
    if result.blocking and not no_fail:
        sys.exit(EXIT_VIOLATION)


def _starter_path(template_dirs: tuple[str, ...]):
    from inferstack import starters

    try:
        return starters.search_path(template_dirs)
    except starters.StarterError as error:
        _bad_input(str(error))


def _stdin_is_tty() -> bool:
    """Whether `new` may prompt (tests replace this)."""
    return sys.stdin.isatty()


# Both starter commands search the same path (starters.search_path).
_template_dir_option = click.option(
    "--template-dir",
    "template_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    help="A directory of <name>/manifest.yaml templates, searched before INFERSTACK_TEMPLATE_PATH and the "
    "built-in starters (repeatable; the first holding a name wins).",
)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_template_dir_option
def templates(fmt: str, template_dirs: tuple[str, ...]) -> None:
    """List the starter templates `inferstack new` renders, with their parameters and where each
    comes from."""
    from rich.table import Table

    from inferstack import starters
    from inferstack.offline.report import console_for

    path = _starter_path(template_dirs)
    try:
        found, broken = starters.discover(path)
    except starters.StarterError as error:  # a directory of the path that cannot be listed
        _bad_input(str(error))
    for problem in broken:  # reported, then the rest listed; the exit code says so
        _err().print(f"[red]error[/]: {escape(clip(problem))}")
    if fmt == "json":
        doc = [
            {
                "name": t.name,
                "description": t.manifest.description,
                "source": str(t.source.path),
                "origin": t.source.origin,
                "shadows": [str(p) for p in t.shadows],
                "stack_parameter": t.manifest.stack_parameter,
                "parameters": [p.model_dump(exclude_none=True) for p in t.manifest.parameters],
            }
            for t in found
        ]
        click.echo(json.dumps(doc, indent=2))
        if broken:
            sys.exit(EXIT_BAD_INPUT)
        return
    console = console_for()
    console.print("search path (first wins): " + "; ".join(f"{d.path} ({d.origin})" for d in path), markup=False)
    for t in found:
        shadows = f"; shadows {', '.join(str(p) for p in t.shadows)}" if t.shadows else ""
        console.print(f"\n{t.name}: {t.manifest.description}", markup=False)
        console.print(f"from {t.directory} ({t.source.origin}{shadows})", markup=False)
        table = Table()
        for column in ("parameter", "type", "default", "allowed", "description"):
            table.add_column(column)
        for p in t.manifest.parameters:
            allowed = ", ".join(starters.format_value(a) for a in p.allowed) if p.allowed else ""
            if p.pattern and not allowed:
                allowed = f"matches {p.pattern}"
            elif not allowed and (p.minimum is not None or p.maximum is not None):
                allowed = f"{'' if p.minimum is None else p.minimum}..{'' if p.maximum is None else p.maximum}"
            table.add_row(
                *(escape(x) for x in (p.name, p.type, starters.format_value(p.default) or '""', allowed, p.description))
            )
        console.print(table)
    if not found:
        console.print("no templates found", markup=False)
    if broken:
        sys.exit(EXIT_BAD_INPUT)


@main.command()
@click.argument("template")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=True))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="A parameter's value (repeatable).")
@_template_dir_option
@click.option("--no-input", is_flag=True, help="Never prompt: parameters not --set take their defaults.")
def new(template: str, directory: str, sets: tuple[str, ...], template_dirs: tuple[str, ...], no_input: bool) -> None:
    """Render TEMPLATE into DIR: <stack>.yaml (the spec) and Pulumi.<stack>.yaml, both validated
    before either is written, never over an existing file. In a terminal it asks for each
    parameter not --set (the default in brackets); elsewhere the defaults are used."""
    from inferstack import starters

    path = _starter_path(template_dirs)
    target = Path(directory)
    try:
        chosen = starters.find(template, path)
        values = starters.parse_sets(sets, chosen)
        if not no_input and _stdin_is_tty():
            for p in chosen.manifest.parameters:
                if p.name in values:
                    continue

                def parse(text: str, p: starters.Parameter = p) -> object:
                    try:
                        return starters.coerce(p, text)
                    except starters.StarterError as error:
                        raise click.BadParameter(str(error)) from None

                allowed = f"; one of {', '.join(starters.format_value(a) for a in p.allowed)}" if p.allowed else ""
                values[p.name] = click.prompt(
                    f"{p.name} ({p.description}{allowed})",
                    default=starters.format_value(p.default),
                    value_proc=parse,
                )
        rendered = starters.render(chosen, values, target)
        starters.check_free(rendered, target, chosen.manifest.stack_parameter)
        try:
            loaded = starters.validate(rendered, target)
        except SpecError as error:
            console = _err()
            named: list[str] = []
            for finding in error.findings:
                params = starters.parameters_at(chosen, values, rendered.spec_text, finding.line)
                named += [p for p in params if p not in named]
                by = f" (set by {', '.join(params)})" if params else " (the template's own text)"
                console.print(f"[red]error[/]: {escape(finding.render(error.source))}{escape(by)}", highlight=False)
            fix = f"change {', '.join(named)} (--set NAME=VALUE)" if named else "fix the template"
            console.print(
                f"{error.total} error(s) in the spec {template} renders to {target / rendered.spec_name}; nothing was "
                f"written: {fix}; `inferstack templates` lists the parameters.",
                markup=False,
            )
            sys.exit(EXIT_BAD_INPUT)
        for warning in loaded.warnings:
            _err().print(f"[yellow]{escape(warning.render(loaded.path))}[/]")
        written = starters.write(rendered, target, chosen.manifest.stack_parameter)
    except starters.StarterError as error:
        _bad_input(str(error))
    except OSError as e:
        _bad_input(f"cannot write to {directory}: {e.strerror or e}; nothing was written")
    click.echo(f"wrote {written[0]} and {written[1]} (template {chosen.name}, stack {rendered.stack})")
    click.echo(f"next: inferstack plan {written[0]}")
    if target.resolve().name != "stacks":  # Pulumi.yaml's stackConfigDir; __main__ reads stacks/<spec>
        click.echo(
            f"note: `pulumi up -s {rendered.stack}` reads its config and spec from stacks/: move both files there"
        )


if __name__ == "__main__":
    main()
