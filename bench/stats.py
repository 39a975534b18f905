"""Order statistics of repeated measurements."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between order statistics (numpy's
    default): with n samples, p99 lies between the two largest when n < 100."""
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    p95: float
    p99: float
    min: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary:
        data = sorted(values)
        if not data:
            nan = math.nan
            return cls(0, nan, nan, nan, nan, nan, nan)
        return cls(len(data), statistics.median(data), percentile(data, 95),
                   percentile(data, 99), data[0], data[-1], statistics.fmean(data))

    def scaled(self, factor: float) -> Summary:
        """The same figures in another unit (e.g. ×1000 for ms)."""
        return Summary(self.n, self.median * factor, self.p95 * factor, self.p99 * factor,
                       self.min * factor, self.max * factor, self.mean * factor)

    def cells(self, fmt: str = "{:.1f}") -> list[str]:
        """median, p95, p99, min, max formatted, for a table row."""
        return [fmt.format(v) for v in (self.median, self.p95, self.p99, self.min, self.max)]


SUMMARY_HEADER = ["n", "median", "p95", "p99", "min", "max"]


def row(label: str, summary: Summary, fmt: str = "{:.1f}") -> list[str]:
    return [label, str(summary.n), *summary.cells(fmt)]
