"""How `inferstack plan` scales with the number of fleets, measured against the Pulumi SDK's own floor.

Run on demand, from the repository root:

    python benchmarks/plan_scale.py [--sizes 1,10,100] [--repeat K]

For each size N it generates a spec with N aws-gpu-fleet targets (copies of the `burst` target of
stacks/dev.yaml, named fleet-000.., each with its own private /16: 10.0.0.0/16, 10.1.0.0/16, ...),
parses it with `parse_spec` (not timed) and measures `run_program`: the real Pulumi program run
in-process under the offline engine's recording mocks, exactly what `inferstack plan` does.

What a plan costs only means something next to what the SDK itself costs. So for every size it
also measures the floor: the same number of resources registered directly with the Pulumi SDK
under plain `pulumi.runtime.set_mocks` and a trivial `Mocks` (new_resource echoes its inputs, call
returns {}): one aws provider and, under it, alternating `aws.ec2.Vpc` / `aws.ec2.SecurityGroup`
resources with a small tags dict, run in a root stack the way the engine runs a program. That is
the SDK's own per-resource cost under mocks (serialising inputs, the RPC round trip through the
mock monitor, resolving outputs). It was quoted as ~8 ms per resource on these machines; measured
warm with this script it is ~1-2 ms, and it rises with N (1.1 ms at 44 resources, 2.0 ms at 4301),
so the SDK itself is mildly superlinear. A plan/floor ratio near 1 means the time goes to the SDK,
not to inferstack; a ratio that grows with N means inferstack adds something superlinear of its own.
The table's res/s and ms/res columns are the plan's; floor ms/res is the floor's.

Every measurement starts from a fresh Pulumi runtime (options reset, mocks set, no root resource,
as the engine's `record` does). Timings are the best of --repeat runs, taken without tracing;
memory is the tracemalloc peak of one further, traced run (tracing slows the run, so it is kept
out of the timings), i.e. the most memory allocated during the run and live at once. ru_maxrss is
left out: it is the whole process's high-water mark, set by whichever earlier run was largest.
Import time is excluded: everything is imported and one warm-up run of each kind is made first.
"""

from __future__ import annotations

import argparse
import copy
import gc
import io
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await
from ruamel.yaml import YAML

from inferstack.offline.engine import PROJECT, run_program
from inferstack.spec.loader import LoadedSpec, parse_spec

ROOT = Path(__file__).resolve().parent.parent
DEV_SPEC = ROOT / "stacks" / "dev.yaml"
TEMPLATE_TARGET = "burst"
STACK = "dev"
FLOOR_REGION = "eu-central-1"
MIB = 1024 * 1024


# -- specs ----------------------------------------------------------------------------------------


def fleet_spec(n: int) -> LoadedSpec:
    """dev.yaml with its one target replaced by n copies, each with a distinct private /16."""
    if not 1 <= n <= 256:
        raise ValueError(f"between 1 and 256 fleets fit in 10.0.0.0/8 as /16s (got {n})")
    yaml = YAML(typ="safe")
    doc = yaml.load(DEV_SPEC.read_text(encoding="utf-8"))
    template = doc["targets"][TEMPLATE_TARGET]
    targets = {}
    for i in range(n):
        target = copy.deepcopy(template)
        target["network"]["cidr"] = f"10.{i}.0.0/16"
        targets[f"fleet-{i:03d}"] = target
    doc["targets"] = targets
    out = io.StringIO()
    yaml.dump(doc, out)
    return parse_spec(out.getvalue(), f"<{n} fleets>")


# -- the floor ------------------------------------------------------------------------------------


class TrivialMocks(pulumi_mocks.Mocks):
    """The least a mock can do; counts what it was asked to create."""

    def __init__(self) -> None:
        self.created = 0

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        self.created += 1
        return args.name + "-id", args.inputs

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict:
        return {}


def floor_program(count: int) -> Callable[[], None]:
    """One provider and count - 1 simple resources under it: count registrations in all."""

    def program() -> None:
        provider = aws.Provider("aws", region=FLOOR_REGION)
        opts = pulumi.ResourceOptions(provider=provider)
        for i in range(count - 1):
            tags = {"Name": f"floor-{i:05d}", "team": "ml-platform", "environment": STACK}
            if i % 2:
                aws.ec2.SecurityGroup(f"sg-{i:05d}", description="floor", tags=tags, opts=opts)
            else:
                aws.ec2.Vpc(f"vpc-{i:05d}", cidr_block="10.0.0.0/16", tags=tags, opts=opts)

    return program


def run_floor(count: int) -> int:
    """Register count resources under plain set_mocks, from a fresh runtime; return how many were."""
    settings.reset_options(project=PROJECT, stack=STACK)
    mocks = TrivialMocks()
    pulumi_mocks.set_mocks(mocks, project=PROJECT, stack=STACK, preview=False)
    settings.ROOT.set(None)  # as the engine does: run_in_stack makes the root stack
    _sync_await(run_in_stack(floor_program(count)))
    return mocks.created


# -- measuring ------------------------------------------------------------------------------------


@dataclass
class Measurement:
    seconds: float  # best of the timed runs
    peak_bytes: int  # tracemalloc peak of the traced run
    result: int  # resources registered


def measure(run: Callable[[], int], repeat: int) -> Measurement:
    seconds = float("inf")
    result = 0
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = run()
        seconds = min(seconds, time.perf_counter() - start)
    gc.collect()
    tracemalloc.start()
    try:
        traced = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if traced != result:
        raise RuntimeError(f"a traced run registered {traced} resources, an untraced one {result}")
    return Measurement(seconds, peak, result)


def plan_runner(loaded: LoadedSpec) -> Callable[[], int]:
    return lambda: len(run_program(loaded, STACK).resources)


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="1,10,100",
        type=lambda s: [int(x) for x in s.split(",") if x.strip()],
        help="fleet counts to plan, comma-separated (default 1,10,100)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per measurement; the best counts (default 1)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    specs = {n: fleet_spec(n) for n in args.sizes}  # parsing is not what is measured

    # Warm up: the first run imports pulumi_aws's resource modules and fills the SDK's caches.
    run_program(fleet_spec(1), STACK)
    run_floor(10)

    header = (
        f"{'fleets':>6} {'resources':>9} {'plan s':>8} {'floor s':>8} {'plan/floor':>10} "
        f"{'plan MiB':>8} {'floor MiB':>9} {'res/s':>7} {'ms/res':>7} {'floor ms/res':>12}"
    )
    print(f"repeat={args.repeat} (best of), python {sys.version.split()[0]}, pulumi {pulumi_version()}")
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        plan = measure(plan_runner(specs[n]), args.repeat)
        floor = measure(lambda result=plan.result: run_floor(result), args.repeat)
        if floor.result != plan.result:
            raise RuntimeError(f"the floor registered {floor.result} resources, the plan {plan.result}")
        print(
            f"{n:>6} {plan.result:>9} {plan.seconds:>8.2f} {floor.seconds:>8.2f} "
            f"{plan.seconds / floor.seconds:>10.2f} {plan.peak_bytes / MIB:>8.1f} {floor.peak_bytes / MIB:>9.1f} "
            f"{plan.result / plan.seconds:>7.0f} {1000 * plan.seconds / plan.result:>7.2f} "
            f"{1000 * floor.seconds / floor.result:>12.2f}",
            flush=True,
        )
    return 0


def pulumi_version() -> str:
    from importlib.metadata import version

    return version("pulumi")


if __name__ == "__main__":
    sys.exit(main())
