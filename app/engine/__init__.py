"""The micro-batching engine: every request's tiles share one queue and one device worker.

One module per policy:
  queue.py      fairness: which request's tile goes next (round-robin, newcomers first, models take turns)
  admission.py  what is let in, in window pixels: the queue bound, deadline planning on the measured
                throughput, Retry-After
  pipeline.py   the batch loop: a batch formed only when the device can take it, waiting to fill it, the
                per-device batch size and batches in flight, the work in flight
  worker.py     one batch on the worker thread: cut windows, run the model (halved on out-of-memory), paste
  liveness.py   whether batches make progress: the stall limit behind /healthz
  engine.py     the lifecycle and the requests: admission, upload, the wait for the result, drain
"""

from app.engine.engine import Engine
from app.engine.pipeline import default_batch_size

__all__ = ["Engine", "default_batch_size"]
