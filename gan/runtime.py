"""Process-level settings that the heavy numeric work of several stages needs."""

from __future__ import annotations

import ctypes


def keep_freed_memory(mmap_threshold: int = 512 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Let glibc reuse freed large blocks instead of returning them to the kernel.

    Extraction chunks, training steps and inference passes allocate the same 10-250 MB arrays
    over and over. By default glibc maps and unmaps each one and the kernel zero-fills every page
    again: on this 2-core machine that was 37 s of system time in the generator benchmark and a
    2-3x slower DenseUNet, and it halved training throughput. Raising the mmap and trim thresholds
    keeps those blocks in the heap for the next use; memory stays bounded by one step's working
    set. Returns False (and changes nothing) where glibc is not the allocator.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from malloc.h
    return bool(libc.mallopt(m_mmap_threshold, mmap_threshold)
                and libc.mallopt(m_trim_threshold, trim_threshold))
