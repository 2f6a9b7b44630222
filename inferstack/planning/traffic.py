"""A day of request arrivals, per second: from the spec's `traffic` section, a built-in shape, or
a CSV of arrivals. Deterministic for a seed."""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np

from inferstack.spec.models import TRAFFIC_SHAPES, Traffic

DAY_SECONDS = 86_400
MAX_CSV_ROWS = 10_000_000


class TrafficError(ValueError):
    """Bad traffic input (unknown profile, unreadable CSV): the CLI exits 2 with the message."""


# Each shape's 24 hourly rates as a share of its busiest hour (UTC hours 0..23).
SHAPES: dict[str, tuple[float, ...]] = {
    "steady": (1.0,) * 24,
    # Quiet night, ramp from 07:00, busy 09:00-17:00 with a lunch dip, tail off by 20:00.
    "business-day": (
        0.02,
        0.02,
        0.02,
        0.02,
        0.02,
        0.03,
        0.05,
        0.2,
        0.6,
        1.0,
        1.0,
        0.9,
        0.7,
        0.9,
        1.0,
        1.0,
        0.9,
        0.6,
        0.3,
        0.15,
        0.08,
        0.05,
        0.03,
        0.02,
    ),
    # A steady tenth of the peak, and one hour (12:00) at the peak.
    "spike": tuple(1.0 if h == 12 else 0.1 for h in range(24)),
    # Batch jobs: on for two hours at 02:00 and 14:00, nothing otherwise.
    "on-off-batch": tuple(1.0 if h in (2, 3, 14, 15) else 0.0 for h in range(24)),
}
assert set(SHAPES) == set(TRAFFIC_SHAPES)


def hourly_rates(traffic: Traffic, shape: str | None = None) -> np.ndarray:
    """Requests per hour for each hour of the day: the spec's list, else a shape scaled to its peak.
    A profile named on the command line (`shape`) replaces the spec's shape and list."""
    if shape is None and traffic.requests_per_hour is not None:
        return np.asarray(traffic.requests_per_hour, dtype=float)
    name = shape or traffic.shape
    if name not in SHAPES:
        raise TrafficError(f"unknown traffic profile {name!r}: use one of {', '.join(SHAPES)}")
    return np.asarray(SHAPES[name]) * traffic.peak_requests_per_hour


def arrivals(rates_per_hour: np.ndarray, burstiness: float, seed: int) -> np.ndarray:
    """Requests arriving in each second of the day. Poisson at the hour's rate; with burstiness b > 1
    each minute's rate is drawn from a gamma of the same mean and variance/mean b (clumped traffic)."""
    rng = np.random.default_rng(seed)
    per_second = np.repeat(rates_per_hour / 3600.0, 3600)
    if burstiness > 1.0:
        per_minute = per_second.reshape(-1, 60)[:, 0]
        shape_k = np.where(per_minute > 0, per_minute * 60 / (burstiness - 1.0), 1.0)
        scale = np.where(per_minute > 0, per_minute / shape_k, 0.0)
        per_second = np.repeat(rng.gamma(shape_k, 1.0) * scale, 60)
    return rng.poisson(per_second).astype(np.int64)


def arrivals_from_csv(path: str) -> np.ndarray:
    """A CSV of arrivals: a header with `second` (0..86399, seconds into the day) and optionally
    `count` (requests in that second, default 1); one row per arrival or per second."""
    out = np.zeros(DAY_SECONDS, dtype=np.int64)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "second" not in reader.fieldnames:
                raise TrafficError(
                    f"{path}: the first line must be a header naming a `second` column (and optionally `count`)"
                )
            for n, row in enumerate(reader, start=2):
                if n > MAX_CSV_ROWS:
                    raise TrafficError(f"{path}: more than {MAX_CSV_ROWS} rows")
                try:
                    second = int(row["second"])
                    count = int(row.get("count") or 1)
                except (TypeError, ValueError):
                    raise TrafficError(
                        f"{path}, line {n}: `second` and `count` must be whole numbers (got {row})"
                    ) from None
                if not 0 <= second < DAY_SECONDS or count < 0:
                    raise TrafficError(f"{path}, line {n}: second must be 0..{DAY_SECONDS - 1} and count >= 0")
                out[second] += count
    except OSError as e:
        raise TrafficError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise TrafficError(f"{path} is not a UTF-8 text CSV") from None
    return out


@dataclass(frozen=True)
class Profile:
    name: str
    arrivals: np.ndarray  # requests per second over the day, all targets together
