"""What each benchmark hands back: tables, notes and target verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    left: int = 1  # how many leading columns are text (left-aligned); the rest numbers


@dataclass
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measured (e.g. the run failed)

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "n/a"}[self.met]


@dataclass
class Section:
    key: str
    title: str
    method: str  # how it was measured (one paragraph, Markdown)
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # measured observations
    error: str | None = None
    # raw figures other sections are built from (e.g. how each cost grows), not printed
    metrics: dict[str, float] = field(default_factory=dict)


def text_table(table: Table) -> str:
    widths = [max(len(str(r[i])) for r in [table.header, *table.rows])
              for i in range(len(table.header))]
    lines = [f"  {table.title}"] if table.title else []
    for i, r in enumerate([table.header, *table.rows]):
        lines.append("    " + "  ".join(str(c).rjust(w) if j >= table.left else str(c).ljust(w)
                                         for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            lines.append("    " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(table: Table) -> str:
    lines = [f"**{table.title}**", ""] if table.title else []
    lines.append("| " + " | ".join(table.header) + " |")
    lines.append("|" + "|".join("---" if i < table.left else "---:"
                                for i in range(len(table.header))) + "|")
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in table.rows]
    return "\n".join(lines)
