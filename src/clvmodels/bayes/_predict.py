"""Posterior summaries of per-customer predictions in bounded memory.

A prediction is a pure numpy function of the parameters and a customer's data. Under the
posterior it is a distribution over draws; we report its mean, standard deviation and
highest-density interval (HDI) per customer.

Memory. Customers with identical data (and segment) are evaluated once. The unique rows
are processed in chunks of ``c`` rows, where ``c * n_draws * 8`` bytes fits in
``memory_limit``; inside a chunk the draws are evaluated in slices so that the
temporaries of the formula stay small too. Each chunk holds every draw of its rows, so the
mean, sd and the HDI are *exact* (the HDI is the narrowest interval holding
``floor(hdi_prob * n_draws)`` + 1 sorted draws, as in ``arviz.hdi``). Peak memory is
about ``2 * memory_limit`` per thread (:data:`THREADS`) whatever the number of
customers; 1,000,000 customers x 4,000 draws never allocate a 1,000,000 x 4,000 array.
(A single customer's draws always fit: with ``memory_limit`` = 64 MiB that is up to 8
million draws.)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ..intervals import HDI_PROB, hdi_of_sorted
from ..models._base import unique_rows as _unique_rows

MEMORY_LIMIT = 64 * 2**20
#: threads evaluating chunks of rows at once (numpy's loops run in parallel)
THREADS = min(2, os.cpu_count() or 1)
_TEMPORARIES = 16  # bytes of temporaries per element, as a multiple of 8, in a formula


def unique_rows(columns: Sequence[np.ndarray]):
    """Unique rows of numeric columns and, for each original row, its unique row."""
    unique, inverse, _, _ = _unique_rows(columns)
    return unique, inverse


def summarise(
    evaluate: Callable[[np.ndarray, slice], np.ndarray],
    n_rows: int,
    n_draws: int,
    *,
    hdi_prob: float = HDI_PROB,
    memory_limit: int = MEMORY_LIMIT,
    side: bool = False,
) -> dict[str, np.ndarray]:
    """Mean, sd, HDI per row of a quantity evaluated draw by draw.

    ``evaluate(rows, draws)`` returns the quantity for the unique rows ``rows`` (integer
    array) and the draws ``draws`` (a slice) as an array of shape (draws, rows). With
    ``side=True`` it returns two such arrays, the quantity and a second one computed on
    the way, of which only the mean is wanted (key ``side_mean``; a second buffer of the
    chunk's size, so peak memory is about ``3 * memory_limit``). Rows are evaluated in
    chunks of consecutive rows, so an ``evaluate`` that shares work between neighbouring
    rows (e.g. rows sorted by the part of the data that a costly term depends on) does so
    within each chunk. Chunks run in ``THREADS`` threads (numpy releases the GIL in its
    loops; each thread has its own buffers, so peak memory is that many times the
    above). The results do not depend on ``memory_limit`` or on the threads.
    """
    if not 0 < hdi_prob < 1:
        raise ValueError(f"hdi_prob must be in (0, 1), got {hdi_prob}")
    rows_per_chunk = int(max(1, min(n_rows, memory_limit // (8 * n_draws))))
    draws_per_slice = int(max(1, memory_limit // (8 * _TEMPORARIES * rows_per_chunk)))
    out = {k: np.empty(n_rows) for k in ("mean", "sd", "hdi_low", "hdi_high")}
    if side:
        out["side_mean"] = np.empty(n_rows)
    pool = [np.empty((rows_per_chunk, n_draws)) for _ in range(2 if side else 1)]
    lock = threading.Lock()
    free = [pool]

    def chunk(start: int) -> None:
        with lock:  # each thread's buffers, reused from chunk to chunk
            bufs = free.pop() if free else [np.empty_like(b) for b in pool]
        rows = np.arange(start, min(n_rows, start + rows_per_chunk))
        block, side_block = (b[: rows.size] for b in (bufs * 2)[:2])
        for d0 in range(0, n_draws, draws_per_slice):
            d1 = min(n_draws, d0 + draws_per_slice)
            value = evaluate(rows, slice(d0, d1))
            if side:
                value, extra = value
                side_block[:, d0:d1] = np.asarray(extra).T
            block[:, d0:d1] = np.asarray(value).T
        if side:
            out["side_mean"][rows] = side_block.mean(axis=1)
        out["mean"][rows] = block.mean(axis=1)
        out["sd"][rows] = block.std(axis=1, ddof=1) if n_draws > 1 else 0.0
        block.sort(axis=1)
        out["hdi_low"][rows], out["hdi_high"][rows] = hdi_of_sorted(block, hdi_prob)
        with lock:
            free.append(bufs)

    starts = range(0, n_rows, rows_per_chunk)
    threads = max(1, min(int(THREADS), len(starts)))
    if threads == 1:
        for start in starts:
            chunk(start)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as executor:
            for done in [executor.submit(chunk, start) for start in starts]:
                done.result()
    return out


def summary_frame(values: dict[str, np.ndarray], inverse: np.ndarray, index) -> pd.DataFrame:
    """Expand unique-row summaries back to one row per customer."""
    return pd.DataFrame({k: v[inverse] for k, v in values.items()}, index=index)
