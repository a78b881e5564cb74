"""``fomm cache``: what the backends' cache (``$FOMM_CACHE``, default ``~/.cache/fomm``) holds,
and ``--clear`` to empty it (everything in it is made again when a run needs it)."""

from __future__ import annotations

import argparse
import time

from ..backends.cache import cache_dir
from ..backends.cache_contents import CacheEntry, cache_entries, clear_cache
from ..errors import UserError
from .arguments import non_negative_float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clear", action="store_true",
                        help="remove what the cache holds (exports being written by another process are left)")
    parser.add_argument("--older-than", type=non_negative_float, metavar="DAYS",
                        help="with --clear: only what has not changed for DAYS days")


def _megabytes(size_bytes: int) -> str:
    return f"{size_bytes / 2**20:,.1f} MiB"


def _age(modified: float) -> str:
    days = (time.time() - modified) / 86400
    return f"{days:.1f} days ago" if days >= 1 else f"{days * 24:.1f} hours ago"


def _describe(entries: list[CacheEntry]) -> None:
    for entry in entries:
        print(f"  {entry.kind:<8} {_megabytes(entry.size_bytes):>12}  {_age(entry.modified):>16}  "
              f"{entry.path.name}: {entry.description}")
    print(f"  {'total':<8} {_megabytes(sum(entry.size_bytes for entry in entries)):>12}")


def run(args: argparse.Namespace) -> int:
    root = cache_dir()
    if args.older_than is not None and not args.clear:
        raise UserError("--older-than says what --clear removes: give both (nothing was removed)")
    entries = cache_entries()
    if not entries:
        print(f"fomm cache: {root} holds nothing")
        return 0
    if not args.clear:
        print(f"fomm cache: {root} ($FOMM_CACHE; everything here is made again when needed)")
        _describe(entries)
        return 0
    cleared = clear_cache(older_than_days=args.older_than)
    for path in cleared.kept_in_use:
        print(f"fomm cache: left {path.name}: another process is exporting it now")
    print(f"fomm cache: freed {_megabytes(cleared.freed_bytes)} in {root}")
    return 0
