"""`python -m pingu.entrypoints.settings_tables [README.md]`: write the README's tables of
settings from the table they document (`pingu/domain/config/settings.py`), between the
README's marker comments; a test fails while they differ."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from pingu.domain.config.docs import Row, markdown_table, per_interface_rows, top_level_rows

TABLES: dict[str, Callable[[], list[Row]]] = {
    "top": top_level_rows,
    "per-interface": per_interface_rows,
}
COMMAND = "python -m pingu.entrypoints.settings_tables README.md"


def with_tables(text: str) -> str:
    """`text` with what stands between `<!-- settings:NAME -->` and `<!-- /settings:NAME -->`
    replaced by the table NAME."""
    for name, rows in TABLES.items():
        start, end = f"<!-- settings:{name} -->\n", f"<!-- /settings:{name} -->"
        before, found, rest = text.partition(start)
        if not found or end not in rest:
            raise ValueError(f"no {start.strip()} ... {end} in the text")
        after = rest[rest.index(end) :]
        text = before + start + markdown_table(rows()) + after
    return text


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "README.md")
    text = path.read_text(encoding="utf-8")
    try:
        new = with_tables(text)
    except ValueError as error:
        print(f"{path}: {error}", file=sys.stderr)
        return 1
    if new != text:
        path.write_text(new, encoding="utf-8")
    print(f"{path}: settings tables {'rewritten' if new != text else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
