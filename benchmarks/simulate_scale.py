"""How long `inferstack simulate` takes for one day at one-second resolution, for 1, 10 and 100 targets.

Run on demand, from the repository root:

    python benchmarks/simulate_scale.py [--sizes 1,10,100] [--repeat K]

For each size N it plans stacks/dev.yaml once (not timed) and takes its `burst` target's scaling
configuration as the plan records it (target tracking on PendingRequests, the in-flight scale-in
alarm, the wake alarm) and its replica model, then times `simulate_stack`'s work for N such
targets: the day's arrivals (business-day shape, peak 1500 requests/hour per target, burstiness 2)
dealt to N targets, and each target's one-second simulation. The plan itself (the Pulumi program
under mocks) is what benchmarks/plan_scale.py measures; it is left out here. Timings are the best
of --repeat runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    from dataclasses import replace

    from inferstack.offline.engine import run_program
    from inferstack.planning.replica import replica_model
    from inferstack.planning.scaling_config import scaling_configs
    from inferstack.planning.simulation import simulate_target, split_arrivals
    from inferstack.planning.traffic import arrivals, hourly_rates
    from inferstack.spec.loader import load_spec
    from inferstack.spec.models import Traffic

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    loaded = load_spec(ROOT / "stacks" / "dev.yaml")
    plan = run_program(loaded)
    cfg = scaling_configs(plan.resources)["burst"]
    traffic = Traffic(shape="business-day", peak_requests_per_hour=1500, burstiness=2)
    rep = replica_model(loaded.spec, plan.stack, "burst", traffic)
    print(f"{'targets':>8} {'seconds':>9} {'s/target':>9} {'requests':>10}")
    for n in (int(s) for s in args.sizes.split(",")):
        names = [f"fleet-{i:03d}" for i in range(n)]
        best, requests = float("inf"), 0
        for _ in range(args.repeat):
            start = time.perf_counter()
            arr = arrivals(hourly_rates(traffic) * n, traffic.burstiness, 0)
            dealt = split_arrivals(arr, dict.fromkeys(names, 1.0), 0)
            requests = 0
            for i, name in enumerate(names):
                res = simulate_target(
                    replace(cfg, target=name),
                    rep,
                    dealt[name],
                    input_tokens=traffic.input_tokens,
                    output_tokens=traffic.output_tokens,
                    slo_seconds=traffic.slo_ttft_seconds,
                    client_timeout=traffic.client_timeout_seconds,
                    seed=i,
                )
                requests += res.requests
            best = min(best, time.perf_counter() - start)
        print(f"{n:>8} {best:>9.3f} {best / n:>9.3f} {requests:>10}")


if __name__ == "__main__":
    main()
