"""Keep freed memory for reuse instead of handing it back to the kernel at once.

An audit at 1M utterances allocates and frees the same large temporaries many times
(per-piece scoring buffers, permutation and resample blocks, table columns).  With glibc's
defaults, blocks above a dynamic threshold are fresh ``mmap`` regions and freed memory at
the top of the heap is trimmed after 128 KB: every reuse then faults its pages in again
and the kernel zeroes them.  Measured on the 1M-utterance audit (2 cores), raising the
thresholds below cut minor page faults from about 920,000 to 685,000 and the kernel
(sys) time by 1.5–3 CPU-s, with the same peak memory within a few per cent
(``benchmarks/bench_full_audit.py`` prints the peak PSS).

:func:`tune` is called by the command line (the library leaves a host process's
allocator alone); it does nothing off glibc or when the user set glibc's own ``MALLOC_*``
variables or ``GLIBC_TUNABLES``, which then decide.
"""
from __future__ import annotations

import os
import sys

# mallopt parameter numbers (glibc malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3

#: blocks up to this size come from the heap and are reused (glibc's maximum)
MMAP_THRESHOLD = 32 << 20
#: free memory at the heap's top kept before it is returned to the kernel
TRIM_THRESHOLD = 1 << 30
#: extra heap requested with each growth (address space; pages count once touched)
TOP_PAD = 64 << 20

_USER_SET = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_",
             "GLIBC_TUNABLES")


def tune() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (and the processes it forks
    later); True when applied."""
    if not sys.platform.startswith("linux") or any(v in os.environ for v in _USER_SET):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (musl has no mallopt)
        return False
    return all(mallopt(p, v) == 1 for p, v in ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                                                (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
