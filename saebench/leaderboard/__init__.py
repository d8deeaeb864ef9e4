"""The leaderboard: a locked, atomically written CSV of results, its table, plots and export.

:mod:`~saebench.leaderboard.schema` documents the columns, :mod:`~saebench.leaderboard.store`
reads and upserts rows, :mod:`~saebench.leaderboard.table` renders the terminal table,
:mod:`~saebench.leaderboard.plots` the figures and :mod:`~saebench.leaderboard.export` the
Markdown that ``leaderboard/README.md`` is generated from.
"""

from saebench.leaderboard.store import (
    LeaderboardError,
    SettingsConflict,
    find_row,
    has_row,
    read_leaderboard,
    upsert_row,
)

__all__ = [
    "LeaderboardError",
    "SettingsConflict",
    "find_row",
    "has_row",
    "read_leaderboard",
    "upsert_row",
]
