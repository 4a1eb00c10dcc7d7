"""An exponentially weighted moving average, for the Retry-After estimates of the limits."""

from __future__ import annotations


class MovingAverage:
    """The newest value weighs `alpha`; `value` is None until the first `add`. Not thread-safe."""

    def __init__(self, alpha: float = 0.2) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.value: float | None = None

    def add(self, sample: float) -> None:
        previous = self.value
        self.value = sample if previous is None else self.alpha * sample + (1 - self.alpha) * previous

    def clamped(self, low: float, high: float) -> float:
        """The average within [low, high]; `low` before any value."""
        return min(max(self.value or low, low), high)
