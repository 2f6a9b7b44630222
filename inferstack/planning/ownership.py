"""Owning the GPUs against renting them: what each way of serving the spec's traffic costs a month,
and the utilisation at which owning breaks even.

The three options serve the same demand, measured in output tokens per second:

- all on-prem: the site's nodes, owned, cost the same whether they serve or not; a demand above
  the site's capacity needs more of them (counted in proportion, a continuous approximation);
- all cloud: replicas rented as the demand needs them (an ideal autoscaler: the rehearsal in
  `inferstack simulate` shows what the real one adds), at the cloud target's price per replica;
- hybrid, the split at the overflow trigger: the site serves what it can hold, the cloud the rest.

With the site's capacity K (tokens/s), its owned cost H ($/h) and the cloud's price c ($/h per
token/s, a replica's hourly price over its output rate), at a mean utilisation u of the site
(mean demand u x K) and the profile's hourly shape s_h (mean 1):

    all cloud   = u x K x c x 730
    all on-prem = H x 730 x max(1, u x max_h s_h)        (sized for the peak hour)
    hybrid      = H x 730 + c x 730 x mean_h max(0, u x K x s_h - K)

Owning breaks even where renting the same mean demand costs what the site does:
    u* = H / (K x c)
above 100% owning never pays for itself at these prices; under it, a site busier than u* on
average is cheaper than the cloud.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inferstack.planning.cost import HOURS_PER_MONTH


@dataclass(frozen=True)
class Ownership:
    """The figures the comparison is made of (see the module docstring)."""

    site_capacity: float  # K, output tokens/s at full load
    site_hourly: float  # H, $/h, owned
    cloud_per_token_rate: float  # c, $/h per output token/s
    shape: tuple[float, ...]  # the profile's hourly demand over its mean (mean 1)
    site: str = ""
    cloud: str = ""

    @property
    def closed_form_utilization(self) -> float:
        """u* = H / (K x c): right only on a flat day (all on-prem is sized for the peak)."""
        return self.site_hourly / (self.site_capacity * self.cloud_per_token_rate)

    @property
    def breakeven_utilization(self) -> float | None:
        """The smallest mean utilisation in (0, 1] where owning (all on-prem or hybrid, the cheaper)
        costs no more than all cloud, found on the curves themselves (a grid, then bisection);
        None when they never cross there."""

        def gap(u: float) -> float:
            return min(self.all_onprem(u), self.hybrid(u)) - self.all_cloud(u)

        grid = np.linspace(1e-4, 1.0, 2001)
        hit = next((i for i, u in enumerate(grid) if gap(float(u)) <= 0), None)
        if hit is None:
            return None
        if hit == 0:
            return float(grid[0])
        lo, hi = float(grid[hit - 1]), float(grid[hit])
        for _ in range(50):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if gap(mid) <= 0 else (mid, hi)
        return hi

    def all_cloud(self, u: float) -> float:
        return u * self.site_capacity * self.cloud_per_token_rate * HOURS_PER_MONTH

    def all_onprem(self, u: float) -> float:
        return self.site_hourly * HOURS_PER_MONTH * max(1.0, u * max(self.shape))

    def hybrid(self, u: float) -> float:
        demand = u * self.site_capacity * np.asarray(self.shape)
        spill = np.maximum(0.0, demand - self.site_capacity).mean()
        return self.site_hourly * HOURS_PER_MONTH + self.cloud_per_token_rate * HOURS_PER_MONTH * float(spill)

    def at(self, u: float) -> dict[str, float]:
        return {"allCloud": self.all_cloud(u), "allOnPrem": self.all_onprem(u), "hybrid": self.hybrid(u)}

    def to_json(self, utilization: float | None) -> dict:
        out = {
            "site": self.site,
            "cloud": self.cloud,
            "siteCapacityOutputTokensPerSecond": round(self.site_capacity, 1),
            "siteHourlyUsd": round(self.site_hourly, 2),
            "cloudUsdPerHourPerOutputTokenPerSecond": round(self.cloud_per_token_rate, 6),
            "breakevenUtilization": None if (be := self.breakeven_utilization) is None else round(be, 4),
        }
        if utilization is not None:
            out["profileUtilization"] = round(utilization, 4)
            out["monthlyUsdAtProfile"] = {k: round(v, 2) for k, v in self.at(utilization).items()}
        return out


def profile_shape(hourly_requests: np.ndarray) -> tuple[float, ...]:
    """The profile's hours over their mean; a day with no requests is flat."""
    mean = float(np.mean(hourly_requests))
    if mean <= 0:
        return (1.0,) * len(hourly_requests)
    return tuple(float(v) / mean for v in hourly_requests)


def plot(ownership: Ownership, path: str, utilization: float | None = None) -> None:
    """Cost a month against the site's mean utilisation for the three options, the break-even
    point marked (and the spec's profile, when given). PNG or SVG by the file's suffix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = max(1.5, 1.2 * (utilization or 0))
    us = np.linspace(0, top, 301)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    ax.plot(us * 100, [ownership.all_cloud(u) for u in us], label=f"all cloud ({ownership.cloud})", color="tab:blue")
    ax.plot(us * 100, [ownership.all_onprem(u) for u in us], label=f"all on-prem ({ownership.site})", color="tab:green")
    ax.plot(
        us * 100,
        [ownership.hybrid(u) for u in us],
        label="hybrid (overflow at the site's capacity)",
        color="tab:purple",
    )
    be = ownership.breakeven_utilization
    if be is not None:  # marked only where the curves really cross
        y = ownership.all_cloud(be)
        ax.plot([be * 100], [y], "o", color="black")
        ax.annotate(f"break-even {be:.0%}", (be * 100, y), textcoords="offset points", xytext=(8, -14))
    if utilization is not None:
        ax.axvline(utilization * 100, color="tab:gray", linestyle=":", label=f"the spec's profile ({utilization:.0%})")
    ax.set_xlabel("mean utilisation of the site's capacity (%)")
    ax.set_ylabel("USD per month")
    ax.set_title("Owning against renting: cost per month of serving the demand")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class NothingToCompare(ValueError):
    """The spec lacks a side of the comparison; the message says what to add."""


def compare(spec, stack: str) -> tuple[Ownership, float | None]:
    """The spec's site (its on-prem target with a cost section; the overflow primary first) against
    its cloud (the first burst target, else the first cloud target), and the spec's profile as a
    utilisation of the site (None without a traffic profile)."""
    from inferstack.planning import cost
    from inferstack.planning.onprem.pools import plan_pools
    from inferstack.planning.replica import pool_replica_model, replica_model
    from inferstack.planning.traffic import hourly_rates
    from inferstack.spec.models import GcpTpuTarget, OnPremK8sTarget

    onprem = [n for n, t in sorted(spec.targets.items()) if isinstance(t, OnPremK8sTarget)]
    cloud = [n for n, t in sorted(spec.targets.items()) if not isinstance(t, OnPremK8sTarget)]
    if spec.overflow is not None:
        onprem = [spec.overflow.primary] + [n for n in onprem if n != spec.overflow.primary]
        cloud = list(spec.overflow.burst) + [n for n in cloud if n not in spec.overflow.burst]
    priced_sites = [n for n in onprem if spec.targets[n].cost is not None]
    if not priced_sites:
        raise NothingToCompare(
            "no on-prem target with a cost section: add targets.<site>.cost (hardware_usd_per_node, usd_per_kwh, ...) "
            "to compare owning with renting"
            if onprem
            else "the spec has no on-prem target: there is no owning to compare renting with"
        )
    if not cloud:
        raise NothingToCompare("the spec has no cloud target: there is no renting to compare owning with")
    site, rented = priced_sites[0], cloud[0]
    traffic = spec.traffic
    site_cost = cost.estimate_onprem(site, spec.targets[site])
    assert site_cost.hourly_max is not None
    capacity = 0.0
    for pool in plan_pools(spec, site):
        rep = pool_replica_model(spec, site, pool, traffic)
        capacity += pool.max_replicas_on_pool * _served(rep, spec, traffic)
    rented_cost = next(c for c in cost.estimate(spec) if c.target == rented)
    if rented_cost.hourly_max is None:
        raise NothingToCompare(f"the catalog has no price for {rented} ({rented_cost.note}): nothing to rent at")
    target = spec.targets[rented]
    size: int = target.slices if isinstance(target, GcpTpuTarget) else target.capacity.max
    rep = replica_model(spec, stack, rented, traffic)
    per_rate = rented_cost.hourly_max / size / _served(rep, spec, traffic)
    rates = hourly_rates(traffic) if traffic is not None else np.ones(24)
    own = Ownership(capacity, site_cost.hourly_max, per_rate, profile_shape(rates), site, rented)
    utilization = None
    if traffic is not None:
        utilization = float(np.mean(rates)) / 3600 * traffic.output_tokens / capacity
    return own, utilization


def _served(rep, spec, traffic) -> float:
    """Output tokens/s one replica delivers on the profile's requests, its prefill included (a
    sequence at full context, mostly prompt, without a profile: as planning.replica sizes it)."""
    from inferstack.planning import sizing

    if traffic is not None:
        tokens_in, tokens_out = traffic.input_tokens, traffic.output_tokens
    else:
        context = spec.model_of(rep.target.split("/")[0])[1].context_length
        tokens_in, tokens_out = max(1, context * 3 // 4), max(1, context // 4)
    return sizing.output_tokens_per_second_served(rep.capacity, tokens_in, tokens_out)
