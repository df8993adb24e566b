"""Python's cyclic garbage collector, tuned for batch processing.

By default a collection starts whenever tracked allocations outnumber frees by 700. A batch
of 20k records allocates millions of short-lived tracked objects (records, events, tuples)
while the ones alive at that moment get scanned again and again: measured on the path's
decode-align-apply loop alone, 27% of its CPU went to the collector. Reference counting frees nearly all of these objects anyway;
the collector is only needed for cycles, which are rare on the hot path.
"""

from __future__ import annotations

import gc

#: Generation-0 threshold (allocations), then how many collections of one generation start
#: the next. Cut the collector's share from ~27% to ~5% in that loop; the worker went from 14.0
#: to 9.4 CPU-s on the benchmark's 200k events (bench/results/throughput.md).
THRESHOLDS = (50_000, 20, 100)


def tune_gc_for_batches() -> None:
    """Collect and freeze what start-up built (never scanned again), then raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
