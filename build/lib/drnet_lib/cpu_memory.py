"""Where the CPU's big tensors come from: keep freed memory for the next iteration (glibc only).

Why. glibc's ``malloc`` serves every request above its mmap threshold (32 MiB at most) with a
fresh ``mmap`` and hands it back to the kernel on ``free``. One DrNet iteration at batch 100
allocates and frees dozens of activations and gradients of 6-52 MB, so every iteration the
kernel maps them again, and zeroes and faults in their pages one by one as the first write touches
them: about 60,000 page faults per iteration of the MNIST ``paper`` profile on this project's
machines (``getrusage``), paid inside the concatenations, BatchNorm and LeakyReLU passes that
write new tensors. Serving big blocks from the heap instead, and never trimming the heap, keeps
those pages mapped from one iteration to the next: after the first iterations there are
almost no page faults (a test counts them in the trainer's iteration). Where a freed big block
has no freed neighbour to merge with, the next request of the same size may not fit it (torch's
64-byte alignment asks glibc for a little more) and the heap grows instead: one tensor allocated
and freed in a loop still faults; a training iteration, whose many blocks are freed together, does
not.

What it changes. Only where the bytes live: every sum and every update is the same. The process
keeps its largest working set (the iteration's peak) instead of returning it between iterations.

The switches are the process's (``mallopt``), like cuDNN's on a GPU, so the trainer sets them
before each step from its own ``train.keep_freed_memory``. What one setting leaves in the heap
serves the other's next allocations, so the two are compared in two processes, not in alternating
blocks of one (``tools/time_authors_drnet.py --set train.keep_freed_memory=false``). On a C library
other than glibc (macOS, musl) :func:`keep_freed_memory` does nothing and says so by returning False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# mallopt's parameter numbers (glibc's <malloc.h>) and glibc's static defaults for them
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
GLIBC_TRIM_THRESHOLD, GLIBC_MMAP_MAX = 128 * 1024, 65536
NEVER_TRIM = 2**31 - 1       # an int; mallopt takes a C int


@functools.lru_cache(maxsize=1)
def _mallopt():
    """glibc's ``mallopt``, or None where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version          # glibc only
    except (OSError, AttributeError, TypeError):
        return None
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return libc.mallopt


_current: bool | None = None     # the last setting applied in this process (None: glibc's own)


def keep_freed_memory(keep: bool = True) -> bool:
    """``keep=True``: serve every allocation from the heap (no mmap) and never trim the heap, so
    freed blocks are reused without new page faults. ``keep=False``: glibc's static defaults
    (mmap above the threshold, trim above 128 KiB). Returns whether glibc took the setting."""
    global _current
    mallopt = _mallopt()
    if mallopt is None:
        return False
    if _current is keep:
        return True
    mmap_max, trim = (0, NEVER_TRIM) if keep else (GLIBC_MMAP_MAX, GLIBC_TRIM_THRESHOLD)
    applied = bool(mallopt(M_MMAP_MAX, mmap_max)) and bool(mallopt(M_TRIM_THRESHOLD, trim))
    _current = keep if applied else None
    return applied
