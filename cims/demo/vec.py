"""Small numpy helpers shared by the demo generators (grouping, ranking, sampling, time)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
TimeArray = NDArray[np.datetime64]  # datetime64[s], hospital-local wall-clock time

MINUTE: Final = np.timedelta64(60, "s")
HOUR: Final = np.timedelta64(3600, "s")
DAY: Final = np.timedelta64(86_400, "s")


def stream(seed: int, name: str) -> np.random.Generator:
    """An independent random stream per generator stage, so stages never shift each other."""
    tag = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(np.random.SeedSequence([seed, tag]))


def repeat_index(counts: NDArray[Any]) -> IntArray:
    """Parent index repeated ``counts[i]`` times: explode parents into child rows."""
    return np.repeat(np.arange(len(counts), dtype=np.int64), np.asarray(counts, np.int64))


def group_rank(keys: Sequence[NDArray[Any]], order: NDArray[Any]) -> IntArray:
    """0-based rank of each row within its group (equal ``keys``), ascending by ``order``."""
    n = len(order)
    if n == 0:
        return np.zeros(0, np.int64)
    idx = np.lexsort([order, *reversed([np.asarray(k) for k in keys])])
    new_group = np.zeros(n, bool)
    new_group[0] = True
    for key in keys:
        sorted_key = np.asarray(key)[idx]
        new_group[1:] |= sorted_key[1:] != sorted_key[:-1]
    starts = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    rank = np.empty(n, np.int64)
    rank[idx] = np.arange(n) - starts
    return rank


def group_size(keys: Sequence[NDArray[Any]]) -> IntArray:
    """Size of each row's group (rows with equal ``keys``)."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, np.int64)
    stacked = np.stack([np.asarray(k, np.int64) for k in keys], axis=1)
    _, inverse, counts = np.unique(stacked, axis=0, return_inverse=True, return_counts=True)
    sizes: IntArray = counts[inverse.ravel()].astype(np.int64)
    return sizes


def pick(rng: np.random.Generator, weights: Sequence[float], size: int) -> IntArray:
    """Indices drawn with the given relative weights."""
    p = np.asarray(weights, np.float64)
    return rng.choice(len(p), size=size, p=p / p.sum()).astype(np.int64)


def pick_rows(rng: np.random.Generator, weights: NDArray[np.float64]) -> IntArray:
    """One index per row of a weight matrix (rows need not be normalised; all-zero → 0)."""
    if weights.shape[0] == 0:
        return np.zeros(0, np.int64)
    cdf = np.cumsum(weights, axis=1)
    total = cdf[:, -1:]
    u = rng.random((weights.shape[0], 1)) * np.where(total > 0, total, 1.0)
    chosen = (u >= cdf).sum(axis=1)
    out: IntArray = np.minimum(chosen, weights.shape[1] - 1).astype(np.int64)
    return out


def poisson(rng: np.random.Generator, lam: NDArray[np.float64]) -> IntArray:
    """Poisson counts for per-row rates."""
    return rng.poisson(np.maximum(lam, 0.0)).astype(np.int64)


def minutes(values: NDArray[Any]) -> NDArray[Any]:
    """Whole minutes as timedelta64[s]."""
    out: NDArray[Any] = np.round(np.asarray(values, np.float64)).astype(np.int64) * MINUTE
    return out


def weekday(day_values: NDArray[np.datetime64]) -> IntArray:
    """Weekday of datetime64[D] values, 0 = Monday (1970-01-01 was a Thursday)."""
    return ((day_values.astype("datetime64[D]").astype(np.int64) + 3) % 7).astype(np.int64)


@dataclass(frozen=True)
class Clock:
    """The demo's time frame: ~5 years of history up to a fixed "now" on the reference day."""

    reference_date: dt.date
    utc_offset: dt.timedelta
    history_years: int = 5
    now_hour: int = 9  # the snapshot is taken at 09:00: morning clinics are under way
    future_days: int = 14

    @property
    def history_start(self) -> np.datetime64:
        """First local day of history."""
        return np.datetime64(self.reference_date, "D") - np.timedelta64(
            round(365.2425 * self.history_years), "D"
        )

    @property
    def today(self) -> np.datetime64:
        """The reference day as datetime64[D]."""
        return np.datetime64(self.reference_date, "D")

    @property
    def now(self) -> np.datetime64:
        """Local wall-clock "now" (datetime64[s])."""
        value: np.datetime64 = self.today.astype("datetime64[s]") + self.now_hour * HOUR
        return value

    @property
    def horizon(self) -> np.datetime64:
        """End (exclusive) of the booked future: today + 14 days, as local midnight."""
        end = self.today + np.timedelta64(self.future_days + 1, "D")
        return cast(np.datetime64, end.astype("datetime64[s]"))

    def to_utc(self, local: TimeArray) -> TimeArray:
        """Convert local wall-clock times to UTC (fixed offset; China has no DST)."""
        offset = np.timedelta64(int(self.utc_offset.total_seconds()), "s")
        out: TimeArray = cast(TimeArray, local.astype("datetime64[s]") - offset)
        return out

    def years_since_start(self, times: TimeArray) -> FloatArray:
        """Fractional years since the start of history (drives lab trends)."""
        span = (times.astype("datetime64[s]") - self.history_start.astype("datetime64[s]")).astype(
            np.float64
        )
        out: FloatArray = span / (365.2425 * 86_400)
        return out
