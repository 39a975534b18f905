"""The usage chart (bot/adapters/chart.py): a PNG of the promised size that decodes,
for a full week, an empty one, and more GPUs and people than fit."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from PIL import Image

from bot.adapters.chart import HEIGHT_PX, MAX_USERS, WIDTH_PX, MatplotlibChart, _top
from bot.domain.usage import GpuDay, UsageLine, UsageReport

UNTIL = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
FIRST = UNTIL.date() - timedelta(days=6)


def report(gpus: int, people: int) -> UsageReport:
    days = [FIRST + timedelta(days=n) for n in range(7)]
    gpu_days = tuple(GpuDay(f"GPU {g}", d, (g * 13 + n * 7) % 101, 0.5)
                     for g in range(gpus) for n, d in enumerate(days) if (g, n) != (1, 2))
    users = tuple(UsageLine(f"U{n:03d}", 1 + n % 3, 100.0 / (n + 1), 50 * n, 100)
                  for n in range(people))
    return UsageReport(FIRST, UNTIL, users, gpu_days)


def decoded(png: bytes) -> Image.Image:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    image.load()  # decodes every pixel: a truncated file fails here
    return image


def test_a_week_is_a_png_of_the_promised_size() -> None:
    image = decoded(MatplotlibChart().render(report(gpus=8, people=6)))
    assert image.format == "PNG" and image.size == (WIDTH_PX, HEIGHT_PX)
    colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50  # drawn, not a blank page


def test_an_empty_week_and_an_oversized_lab_still_render() -> None:
    assert decoded(MatplotlibChart().render(report(gpus=0, people=0))).size == \
        (WIDTH_PX, HEIGHT_PX)
    assert decoded(MatplotlibChart().render(report(gpus=40, people=30))).size == \
        (WIDTH_PX, HEIGHT_PX)


def test_people_beyond_the_bars_are_summed_in_one() -> None:
    lines = list(report(gpus=1, people=MAX_USERS + 5).users)
    top = _top(lines)
    assert len(top) == MAX_USERS and top[-1].user_id == "others (6)"
    assert sum(x.gpu_hours for x in top) == sum(x.gpu_hours for x in lines)


def test_names_come_from_the_given_function() -> None:
    asked: list[str] = []
    MatplotlibChart(name=lambda user: asked.append(user) or user.lower()).render(
        report(gpus=2, people=3))
    assert asked == ["U000", "U001", "U002"]
