"""Errors told to people: one line each."""

from __future__ import annotations


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first non-empty line of ``error``'s message, at most ``limit`` characters; some
    errors (a truncated file's unpickling error, KeyError('')) have no message at all."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:limit] if lines else "(no message)"
