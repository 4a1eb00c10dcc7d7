"""The micro-batching engine: every request's tiles share one queue and one device worker.

One module per policy:
  queue.py      fairness: which request's tile goes next (round-robin, newcomers first, models take turns)
  admission.py  what is let in, in window pixels: the queue bound, deadline planning on the measured
                throughput, Retry-After
  worker.py     one batch on the worker thread: cut windows, run the model (halved on out-of-memory), paste
  engine.py     the lifecycle and the batch loop: waiting to fill a batch, the per-device batch size, drain
"""

from app.engine.engine import Engine, default_batch_size

__all__ = ["Engine", "default_batch_size"]
