"""A list of result rows that prints as a table and converts to a dict."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from typing import Any


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    return str(value)


class Report(list):
    """Rows of results (dicts with the same keys) returned by the tools.

    `print(report)` shows an aligned text table, `report.to_dict()` gives
    `{key: row}` indexed by the first column, and `report.to_records()` a list
    of plain dicts (ready for `pandas.DataFrame`), `report.to_csv(path)` a CSV
    file.

    Args:
        rows: iterable of dicts; the keys of the first row are the columns.
        title: optional line printed above the table.

    Example:

    >>> report = Report([{"trick": "bn", "gain": 0.123456}], title="Gains")
    >>> print(report)
    Gains
    trick  gain
    -----  ------
    bn     0.1235
    >>> report.to_dict()["bn"]["gain"]
    0.123456
    """

    def __init__(
        self, rows: Iterable[Mapping[str, Any]] = (), title: str | None = None
    ) -> None:
        super().__init__(dict(row) for row in rows)
        self.title = title

    @property
    def columns(self) -> list[str]:
        """The column names, in order."""
        return list(self[0]) if self else []

    def to_records(self) -> list[dict[str, Any]]:
        """Returns the rows as a list of plain dicts."""
        return [dict(row) for row in self]

    def to_dict(self) -> dict[Any, dict[str, Any]]:
        """Returns `{first-column value: row}` for every row."""
        key = self.columns[0] if self else None
        return {row[key]: dict(row) for row in self}

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Writes the rows to a CSV file at `path`, with a header line."""
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self)

    def to_markdown(self) -> str:
        """Returns the table in GitHub Markdown."""
        columns = self.columns
        lines = [
            "| " + " | ".join(columns) + " |",
            "|" + "|".join("---" for _ in columns) + "|",
        ]
        for row in self:
            cells = (_format(row.get(c)) for c in columns)
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def __str__(self) -> str:
        columns = self.columns
        cells = [[_format(row.get(c)) for c in columns] for row in self]
        widths = [
            max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)
        ]
        lines = [self.title] if self.title else []
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
        )
        lines.append("  ".join("-" * w for w in widths))
        lines += [
            "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells
        ]
        return "\n".join(line.rstrip() for line in lines)

    def __repr__(self) -> str:
        return f"Report({self.to_records()!r})"
