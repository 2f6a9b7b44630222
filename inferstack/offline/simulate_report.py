"""`inferstack simulate`'s output: the table, and the plot (matplotlib, Agg backend: no display)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from inferstack.planning.simulation import StackResult


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


def print_result(result: StackResult, console: Console) -> None:
    table = Table(title=f"simulate {result.stack}: profile {result.profile}, seed {result.seed}")
    for col in ("target", "requests", "refused", "over SLO", "TTFT p50/p95/p99 s", "wait p50/p95/p99 s",
                "cold start s (worst)", "replica-h", "cost USD", "events"):
        table.add_column(col, overflow="fold")
    for t in result.targets:
        ttft = "/".join(_s(t.ttft.get(k)) for k in ("p50", "p95", "p99"))
        wait = "/".join(_s(t.queue_wait.get(k)) for k in ("p50", "p95", "p99"))
        cold = f"{len(t.cold_start_first_token)}× ({max(t.cold_start_first_token):g})" if t.cold_start_first_token else "-"
        table.add_row(t.target, str(t.requests), str(t.refused), str(t.over_slo), ttft, wait, cold,
                      f"{t.replica_hours:.1f}", _s(t.cost_usd), str(len(t.events)))
    tot = result.totals()
    table.add_row("stack", str(tot["requests"]), str(tot["refused"]), str(tot["overSlo"]), "", "", "",
                  f"{tot['replicaHours']:.1f}", _s(tot["costUsd"]), "")
    console.print(table)
    for t in result.targets:
        r = t.replica
        if r is not None:
            console.print(f"{t.target}: start-up {r.startup_seconds}s"
                          + (f", warm-pool start {r.warm_start_seconds}s" if r.warm_start_seconds else "")
                          + f", {r.concurrent_sequences} sequences, {r.output_tokens_per_second:g} output tokens/s"
                          + f" per replica ({r.formula})", highlight=False)
    findings = result.findings
    if not findings:
        console.print("[green]no findings[/]")
    for f in findings:
        console.print(f"[red]finding[/] {f.kind} [bold]{f.resource}[/]: {f.message}", highlight=False)
    for n in result.notes:
        console.print(f"note: {n}", highlight=False)


def plot(result: StackResult, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(result.targets)
    fig, axes = plt.subplots(n, 1, figsize=(11, 3.2 * n), sharex=True, squeeze=False)
    colours = {"out": "tab:green", "in": "tab:red", "wake": "tab:purple", "interrupt": "tab:orange"}
    for ax, t in zip(axes[:, 0], result.targets, strict=True):
        hours = np.arange(len(t.series["replicas"])) / 60
        ax.step(hours, t.series["replicas"], where="post", label="replicas serving", color="tab:blue")
        ax.step(hours, t.series["desired"], where="post", label="desired", color="tab:blue", linestyle=":")
        ax.set_ylabel("replicas")
        ax.set_title(f"{t.target}: {len(t.findings)} finding(s)", loc="left", fontsize=10)
        q = ax.twinx()
        q.plot(hours, t.series["queue"], color="tab:gray", linewidth=0.8, label="queue depth")
        q.plot(hours, t.series["wait"], color="tab:brown", linewidth=0.8, label="mean TTFT s")
        q.set_ylabel("queue / TTFT s")
        seen = set()
        for e in t.events:
            label = None if e.kind in seen else f"scale {e.kind}"
            seen.add(e.kind)
            ax.axvline(e.second / 3600, color=colours.get(e.kind, "black"), alpha=0.35, linewidth=0.8, label=label)
        lines = ax.get_legend_handles_labels()
        more = q.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=7, ncol=4)
    axes[-1, 0].set_xlabel("hour of day (UTC)")
    axes[-1, 0].set_xlim(0, 24)
    fig.suptitle(f"{result.stack}: profile {result.profile}, seed {result.seed}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
