"""`inferstack simulate`'s output: the table, and the plot (matplotlib, Agg backend: no display)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from inferstack.planning.simulation import StackResult


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


def print_result(result: StackResult, console: Console) -> None:
    table = Table(title=f"simulate {result.stack}: profile {result.profile}, seed {result.seed}")
    for col in (
        "target",
        "requests",
        "refused",
        "over SLO",
        "TTFT p50/p95/p99 s",
        "wait p50/p95/p99 s",
        "cold start s (worst)",
        "replica-h",
        "cost USD",
        "events",
    ):
        table.add_column(col, overflow="fold")
    for t in result.targets:
        ttft = "/".join(_s(t.ttft.get(k)) for k in ("p50", "p95", "p99"))
        wait = "/".join(_s(t.queue_wait.get(k)) for k in ("p50", "p95", "p99"))
        cold = (
            f"{len(t.cold_start_first_token)}× ({max(t.cold_start_first_token):g})" if t.cold_start_first_token else "-"
        )
        table.add_row(
            t.target,
            str(t.requests),
            str(t.refused),
            str(t.over_slo),
            ttft,
            wait,
            cold,
            f"{t.replica_hours:.1f}",
            _s(t.cost_usd),
            str(len(t.events)),
        )
    tot = result.totals()
    table.add_row(
        "stack",
        str(tot["requests"]),
        str(tot["refused"]),
        str(tot["overSlo"]),
        "",
        "",
        "",
        f"{tot['replicaHours']:.1f}",
        _s(tot["costUsd"]),
        "",
    )
    console.print(table)
    for t in result.targets:
        r = t.replica
        if r is not None:
            console.print(
                f"{t.target}: start-up {r.startup_seconds}s"
                + (f", warm-pool start {r.warm_start_seconds}s" if r.warm_start_seconds else "")
                + f", {r.concurrent_sequences} sequences, {r.output_tokens_per_second:g} output tokens/s"
                + f" per replica ({r.formula})"
                + (f"; at most {r.device_cap} replicas ({r.cap_reason})" if r.device_cap is not None else ""),
                highlight=False,
            )
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
    from matplotlib.ticker import MaxNLocator

    n = len(result.targets)
    fig, axes = plt.subplots(n, 1, figsize=(11, 3.4 * n), sharex=True, squeeze=False)
    styles = {
        "out": ("tab:green", "-"),
        "in": ("tab:red", "-"),
        "wake": ("tab:purple", "-"),
        "interrupt": ("tab:orange", "--"),
    }
    for ax, t in zip(axes[:, 0], result.targets, strict=True):
        hours = np.arange(len(t.series["replicas"])) / 60
        q = ax.twinx()
        queue, wait = np.asarray(t.series["queue"]), np.asarray(t.series["wait"], dtype=float)
        q.fill_between(hours, queue, step="post", color="tab:gray", alpha=0.25, linewidth=0, label="queue depth")
        q.plot(hours, wait, color="tab:brown", linewidth=0.9, label="mean TTFT s (per minute)")
        top = max(1.0, float(np.nanmax(np.concatenate([queue, np.nan_to_num(wait)]))) if len(queue) else 1.0)
        q.set_ylim(0, top * 1.15)
        q.set_ylabel("queue depth / TTFT s")
        ax.step(
            hours, t.series["desired"], where="post", label="desired", color="tab:blue", linestyle=":", linewidth=1.2
        )
        ax.step(hours, t.series["replicas"], where="post", label="replicas serving", color="tab:blue", linewidth=1.8)
        ax.set_zorder(q.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.set_ylim(0, max(t.series["desired"] + t.series["replicas"] + [1]) + 1)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("replicas")
        kinds = ", ".join(sorted({f.kind for f in t.findings})) or "no findings"
        ax.set_title(f"{t.target}: {kinds}", loc="right", fontsize=10, fontweight="bold")
        seen = set()
        for e in t.events:
            colour, style = styles.get(e.kind, ("black", "-"))
            ax.axvline(
                e.second / 3600,
                color=colour,
                linestyle=style,
                alpha=0.45,
                linewidth=0.8,
                label=None if e.kind in seen else f"scale {e.kind}" if e.kind != "interrupt" else "spot interruption",
            )
            seen.add(e.kind)
        handles, labels = ax.get_legend_handles_labels()
        more = q.get_legend_handles_labels()
        ax.legend(
            handles + more[0],
            labels + more[1],
            loc="lower left",
            bbox_to_anchor=(0, 1.02),
            fontsize=7,
            ncol=8,
            frameon=False,
            borderaxespad=0,
        )
    axes[-1, 0].set_xlabel("hour of day (UTC)")
    axes[-1, 0].set_xlim(0, 24)
    axes[-1, 0].set_xticks(range(0, 25, 2))
    fig.suptitle(f"{result.stack}: profile {result.profile}, seed {result.seed}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
