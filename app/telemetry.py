"""Prometheus metrics, names as in the README's "Metrics" table. One instance per app, on an injectable
registry (tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Request latency on a CPU runs to tens of seconds for large images; on a GPU, milliseconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """The service's metric families."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "srgan_requests_total",
            "HTTP requests by endpoint and status code",
            ["endpoint", "code"],
            registry=r,
        )
        self.request_duration = Histogram(
            "srgan_request_duration_seconds",
            "HTTP request latency",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("srgan_queue_depth_tiles", "Tiles waiting for the device", registry=r)
        self.queue_wait = Histogram(
            "srgan_queue_wait_seconds",
            "Time a tile waits before its batch runs",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "srgan_batch_size_tiles",
            "Tiles per device batch",
            ["model"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_duration = Histogram(
            "srgan_batch_duration_seconds",
            "Device time per batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.pixels = Counter(
            "srgan_pixels_total", "Pixels processed (in: LR input, out: SR output)", ["direction"], registry=r
        )
        self.rejected = Counter("srgan_rejected_total", "Requests refused, by reason", ["reason"], registry=r)
        self.model_ready = Gauge(
            "srgan_model_ready", "1 while /readyz answers 200 (loaded, warm, not draining, not stalled)",
            registry=r,
        )
        self.device_memory = Gauge(
            "srgan_device_memory_bytes", "CUDA memory (allocated, reserved, total)", ["kind"], registry=r
        )
