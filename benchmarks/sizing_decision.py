"""How long one cheapest-fit decision takes (planning.shapes.choose), over every model of the
catalog x every region of its residency lists x every target kind, with and without a traffic
profile. A plan makes one decision per target that leaves its shape out, so each must stay well
under a millisecond for plans to stay fast.

Run on demand, from the repository root:

    python benchmarks/sizing_decision.py [--repeat K]

Prints, per target kind and load, the number of decisions, the mean and the worst time per
decision (best of K runs of each), and the share that found a shape. Specs are built once (not
timed); only `shapes.choose` is.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inferstack import catalog
from inferstack.planning import shapes
from inferstack.spec.models import DeploymentSpec

DIGEST = "sha256:0d4c8d8bd1b4dbbd4ec0a02c4ec7c2fa4f2e3db0e8ee7c1d9b3a1f0e5d6c7b8a"
TRAFFIC = {"peak_requests_per_hour": 20_000, "input_tokens": 1000, "output_tokens": 250}


def target(kind: str, region: str, generation: str | None) -> dict:
    if kind == "aws-gpu-fleet":
        return {
            "kind": kind,
            "region": region,
            "capacity": {"min": 1, "max": 4},
            "autoscaling": {"signal": "queue_depth", "target": 4},
        }
    if kind == "gcp-gpu-fleet":
        return {
            "kind": kind,
            "project": "acme-ml-prod",
            "region": region,
            "capacity": {"min": 1, "max": 4},
            "autoscaling": {"signal": "queue_depth", "target": 4},
        }
    return {
        "kind": kind,
        "project": "acme-ml-prod",
        "zone": f"{region}-a",
        "generation": generation,
        "image": f"registry.example.com/vllm-tpu@{DIGEST}",
    }


def spec(model: catalog.ModelArchitecture, tgt: dict, traffic: bool) -> DeploymentSpec:
    scheme = "s3" if tgt["kind"].startswith("aws") else "gs"
    region = tgt.get("region") or tgt["zone"].rsplit("-", 1)[0]
    return DeploymentSpec.model_validate(
        {
            "metadata": {"name": "b", "team": "ml", "environment": "dev", "data_classification": "internal"},
            "residency": {"regions": [region]},
            "models": {
                "m": {
                    "parameters": model.parameters,
                    "precision": "bf16",
                    "context_length": 8192,
                    "catalog_name": model.name,
                    "source": f"{scheme}://acme/m",
                }
            },
            "serving": {"engine": "vllm", "image": f"registry.example.com/vllm@{DIGEST}"},
            "targets": {"t": tgt},
            **({"traffic": TRAFFIC} if traffic else {}),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    aws = sorted({r for j in catalog.jurisdictions().values() for r in j.aws})
    gcp = sorted({r for j in catalog.jurisdictions().values() for r in j.gcp})
    kinds = [("aws-gpu-fleet", r, None) for r in aws] + [("gcp-gpu-fleet", r, None) for r in gcp]
    kinds += [("gcp-tpu", r, g) for r in gcp for g in catalog.tpu_generations()]
    print(f"{'kind':<15} {'load':<8} {'decisions':>9} {'mean ms':>8} {'worst ms':>9} {'found':>6}")
    for kind in ("aws-gpu-fleet", "gcp-gpu-fleet", "gcp-tpu"):
        for traffic in (False, True):
            specs = [
                spec(m, target(k, r, g), traffic)
                for m in catalog.model_architectures().values()
                for k, r, g in kinds
                if k == kind
            ]
            shapes.choose(specs[0], "t")  # warm the catalog's caches
            times, found = [], 0
            for s in specs:
                best = float("inf")
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    choice = shapes.choose(s, "t")
                    best = min(best, time.perf_counter() - start)
                times.append(best * 1000)
                found += choice.chosen is not None
            print(
                f"{kind:<15} {'traffic' if traffic else 'none':<8} {len(specs):>9} "
                f"{statistics.mean(times):>8.3f} {max(times):>9.3f} {found / len(specs):>6.0%}"
            )


if __name__ == "__main__":
    main()
