"""Process-wide memory settings for processing full-size CCD images with numpy.

A full-size HSC CCD plane is 34 MB (float32): above glibc's largest automatic ``mmap`` threshold (32 MB), so
every full-size temporary is a fresh ``mmap`` whose pages are faulted in (and zeroed) by the kernel, then
unmapped when freed; and numpy asks for transparent huge pages on large arrays, which, with the kernel's
``defrag=madvise`` setting, makes each fault compact memory.  On one CCD from raw to calexp + src this was
~0.7 CPU-s of system time out of ~5.  `tune_memory` keeps large blocks in the heap, so that freed
temporaries are reused without new page faults (peak RSS +5%), and turns numpy's huge-page advice off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import numpy as np

__all__ = ["tune_memory"]

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

_done = False


def tune_memory(*, huge_pages: bool = False) -> bool:
    """Keep large allocations in the heap (glibc) and set numpy's huge-page advice; once per process.

    Parameters
    ----------
    huge_pages : `bool`
        Let numpy advise transparent huge pages for large arrays (its default).

    Returns
    -------
    tuned : `bool`
        Whether glibc's allocator was tuned (`False` on other C libraries, where nothing is changed).
    """
    global _done
    setter = getattr(getattr(np, "_core", np).multiarray, "_set_madvise_hugepage", None)
    if setter is not None:
        setter(bool(huge_pages))
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30))  # blocks up to 1 GB from the heap, not mmap
    ok &= bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))  # freed heap memory kept for reuse
    ok &= bool(mallopt(_M_TOP_PAD, 64 << 20))  # the heap grows by 64 MB steps
    _done = ok
    return ok
