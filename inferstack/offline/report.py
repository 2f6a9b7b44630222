"""A plan for people: a tree of resources grouped by component, and a summary line by type."""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import IO

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from inferstack.offline.engine import Plan
from inferstack.offline.k8s_render import object_label
from inferstack.offline.policy import PolicyReport
from inferstack.planning import observability
from inferstack.planning.cost import TargetCost, stack_total

# Lines are never wrapped when output goes to a file or a CI log: a URN or a type token split over
# two lines can be neither searched for nor copied. Rich lays out for the console's width, so a
# width no line reaches means no wrapping; tables still size their columns to their content.
UNWRAPPED_WIDTH = 100_000


def console_for(file: IO[str] | None = None, *, force_terminal: bool | None = None) -> Console:
    """The console for a plan or a policy report: the terminal's width on a terminal (a
    readable layout, wrapped to fit), no wrapping at all anywhere else."""
    console = Console(file=file or sys.stdout, highlight=False, soft_wrap=False, force_terminal=force_terminal)
    if console.is_terminal:
        return console
    return Console(
        file=file or sys.stdout, highlight=False, soft_wrap=False, force_terminal=force_terminal, width=UNWRAPPED_WIDTH
    )


def _label(resource: dict) -> str:
    flags = []
    options = resource["options"]
    if options["protect"]:
        flags.append("protected")
    if options["ignoreChanges"]:
        flags.append("ignores " + ", ".join(options["ignoreChanges"]))
    suffix = f"  [yellow]({escape('; '.join(flags))})[/]" if flags else ""
    if (k8s := object_label(resource)) is not None:
        # A Kubernetes object reads as the cluster names it; the Pulumi type and name after it.
        return f"[cyan]{escape(k8s)}[/]  [dim]{escape(resource['type'])} {escape(resource['name'])}[/]{suffix}"
    if resource["custom"]:
        return f"[cyan]{escape(resource['type'])}[/]  {escape(resource['name'])}{suffix}"
    return f"[bold]{escape(resource['name'])}[/]  [magenta]{escape(resource['type'])}[/]{suffix}"


def summary(plan: Plan) -> str:
    counts = plan.count_by_type()
    components = sum(1 for r in plan.resources if not r["custom"])
    return f"{sum(counts.values())} resources, {len(counts)} types, {components} components"


def type_table(plan: Plan) -> Table:
    table = Table("resources", "type", box=None, show_edge=False, pad_edge=False)
    for kind, n in sorted(plan.count_by_type().items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(str(n), kind)
    return table


def render_tree(plan: Plan) -> Tree:
    children: dict[str | None, list[dict]] = defaultdict(list)
    urns = {r["urn"] for r in plan.resources}
    for r in plan.resources:
        children[r["parent"] if r["parent"] in urns else None].append(r)

    root = Tree(f"[bold]stack {escape(plan.stack)}[/]  ({escape(plan.spec_path)})")

    def add(node: Tree, parent: str | None) -> None:
        # Components first, then resources, each by name: the reader sees structure before detail.
        for r in sorted(children[parent], key=lambda r: (r["custom"], r["type"], r["name"])):
            add(node.add(_label(r)), r["urn"])

    add(root, None)
    return root


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.2f}/h"


def _month(value: float | None) -> str:
    return "-" if value is None else f"${value:,.0f}"


def _per_million(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def cost_table(costs: list[TargetCost]) -> Table:
    table = Table(
        "target",
        "priced as",
        "at min",
        "at max",
        "per month",
        "per 1M output tokens",
        "note",
        title="cost estimate (catalog prices; monthly from the rehearsed traffic profile)",
        box=None,
    )
    for c in costs:
        table.add_row(
            c.target,
            f"{c.instance_type} in {c.region}",
            _usd(c.hourly_min),
            _usd(c.hourly_max),
            _month(c.monthly),
            _per_million(c.per_million_output_tokens),
            c.note,
        )
    total = stack_total(costs)
    if len(costs) > 1:
        table.add_row(
            "[bold]stack[/]",
            "",
            _usd(total["hourlyUsdAtMin"]),
            _usd(total["hourlyUsdAtMax"]),
            _month(total["monthlyUsd"]),
            _per_million(total["usdPerMillionOutputTokens"]),
            "",
        )
    return table


def sizing_lines(sizing: list[dict]) -> list[str]:
    """One line per target whose shape inferstack chose."""
    return [f"sizing: {s['target']}: {s['field']} {s['chosen']}: {s['reason']}" for s in sizing]


def overflow_table(overflow: dict) -> Table:
    title = (
        f"overflow from {overflow['primary']} when {overflow['trigger']}; "
        f"{', '.join(overflow['classifications'])} data only ({overflow['classificationHeader']}); "
        f"overflowed requests wait up to {overflow['overflowTimeoutSeconds']} s"
    )
    table = Table("burst", "endpoint", "from zero to first token", "wakes on", title=title, box=None)
    for b in overflow["burst"]:
        table.add_row(
            f"{b['target']} ({b['cloud']} {b['region']})",
            b["endpoint"],
            f"~{b['coldStartSeconds']} s (estimate)",
            b["wakesOn"] or "(always serving)",
        )
    return table


def print_plan(plan: Plan, console: Console) -> None:
    console.print(render_tree(plan))
    if plan.outputs:
        console.print("[bold]outputs[/]")
        for key in sorted(plan.outputs):
            console.print(f"  {escape(key)} = {escape(str(plan.outputs[key]))}")
    console.print(type_table(plan))
    for line in sizing_lines(plan.sizing):
        console.print(escape(line), highlight=False)
    for line in observability.describe_lines(plan.observability):
        console.print(escape(line), highlight=False)
    if plan.cost:
        console.print(cost_table(plan.cost))
    if plan.overflow is not None:
        console.print(overflow_table(plan.overflow))
    console.print(f"[bold]{summary(plan)}[/]", highlight=False)


def print_policy(report: PolicyReport, console: Console) -> None:
    """Violations grouped by resource, mandatory first; then one line of totals."""
    by_urn: dict[str, list] = defaultdict(list)
    for v in report.violations:
        by_urn[v.urn or "(stack)"].append(v)
    for urn in sorted(by_urn):
        console.print(f"[bold]{escape(urn)}[/]")
        for v in sorted(by_urn[urn], key=lambda v: (v.enforcement != "mandatory", v.policy)):
            colour = "red" if v.enforcement == "mandatory" else "yellow"
            message = v.message.split("\n", 1)[-1]  # the pack prefixes the policy's description
            console.print(f"  [{colour}]{v.enforcement}[/] {v.severity} {escape(v.policy)}: {escape(message)}")
    verdict = "[red]blocked[/]" if report.mandatory else "[green]passed[/]"
    console.print(
        f"policy {escape(report.pack)}@{escape(report.version)}: {verdict}: "
        f"{len(report.mandatory)} mandatory, {len(report.violations) - len(report.mandatory)} advisory violation(s)",
        highlight=False,
    )


def print_sizing(report: list, pools: list, console: Console) -> None:
    """Per cloud target: what the model needs, the shapes that hold it (cheapest first) and the
    ones ruled out, and the choice with its reason; per on-prem pool, what it gives a replica."""
    for p in pools:
        console.print(f"[bold]{escape(p.target)}[/] pool {escape(p.pool)}: {escape(p.describe())}", highlight=False)
    for r in report:
        console.print(
            f"[bold]{escape(r.target)}[/]: {escape(r.field)} {escape(r.chosen.shape if r.chosen else '(none)')}"
        )
        console.print(f"  {escape(r.reason())}", highlight=False)
        if r.load:
            console.print(f"  replicas counted for {escape(r.load)}", highlight=False)
        table = Table("shape", "per hour", "replicas at peak", "per hour at peak", box=None, title=None)
        for c in r.fitting:
            table.add_row(
                escape(c.description),
                f"${c.hourly:,.2f}" if c.hourly is not None else "unpriced",
                "-" if c.replicas is None else str(c.replicas),
                "-" if c.cost_at_load is None else f"${c.cost_at_load:,.2f}",
            )
        if r.fitting:
            console.print(table)
        for c in r.ruled_out:
            why = c.refusal or f"no price: {c.price_note}"
            console.print(f"  ruled out {escape(c.shape)}: {escape(why)}", highlight=False)


def print_ownership(own, utilization: float | None, missing: str | None, console: Console) -> None:
    if own is None:
        console.print(f"owning against renting: {escape(missing or '')}", highlight=False)
        return
    console.print(
        f"[bold]owning against renting[/]: {escape(own.site)} (owned, ${own.site_hourly:,.2f}/h, "
        f"{own.site_capacity:,.0f} output tokens/s at full load) against {escape(own.cloud)} "
        f"(${own.cloud_per_token_rate:,.4f}/h per output token/s)",
        highlight=False,
    )
    be = own.breakeven_utilization
    verdict = (
        f"owning breaks even at {be:.1%} mean utilisation of the site (where the cost curves cross)"
        if be is not None
        else "owning never breaks even: the cost curves do not cross up to 100% mean utilisation of the site "
        f"(on a flat day it would at {own.closed_form_utilization:.1%}, but the site is sized for the peak hour)"
    )
    console.print(f"  {verdict}", highlight=False)
    if utilization is not None:
        at = own.at(utilization)
        console.print(
            f"  at the spec's profile ({utilization:.1%} mean utilisation): all cloud ${at['allCloud']:,.0f}/month, "
            f"all on-prem ${at['allOnPrem']:,.0f}/month, hybrid ${at['hybrid']:,.0f}/month",
            highlight=False,
        )
