"""The service's error hierarchy. Each error carries a stable code; `app.http.error_mapping` maps them to HTTP
in one place.

The CLI raises the same errors, so a user sees the same message whichever way they call us.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: `code` is the machine-readable name, the message is for the user."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedRequest(ServiceError):
    """The request itself is malformed, e.g. a broken multipart body (400)."""

    code = "bad_request"


class BadImage(ServiceError):
    """The bytes are not a decodable image (400)."""

    code = "bad_image"


class TooLarge(ServiceError):
    """The upload or its pixel count is over the configured limit (413)."""

    code = "too_large"


class UploadTimeout(ServiceError):
    """The upload did not arrive within the request's time limit (408)."""

    code = "upload_timeout"


class UnsupportedFormat(ServiceError):
    """A real image, or a known file type, that we do not accept (415)."""

    code = "unsupported_format"


class InvalidParameter(ServiceError):
    """A query or form parameter out of range (422)."""

    code = "invalid_parameter"


class TooSmall(ServiceError):
    """The image is valid but too small for the operation asked (422)."""

    code = "too_small"


class Unauthorized(ServiceError):
    """Missing or wrong API key (401); `challenge` is the WWW-Authenticate header that goes with it."""

    code = "unauthorized"

    def __init__(self, message: str, challenge: str = 'Bearer realm="srgan"') -> None:
        super().__init__(message)
        self.challenge = challenge


class Overloaded(ServiceError):
    """The queue is full, or the deadline cannot be met given the queue ahead (503 + Retry-After)."""

    code = "queue_full"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class MemoryBudgetExceeded(Overloaded):
    """Requests in flight hold the memory budget; this one would pass it (503 + Retry-After)."""

    code = "memory"


class HostBusy(Overloaded):
    """The host's decode/encode pool has more work waiting than it may queue (503 + Retry-After)."""

    code = "host_busy"


class NotReady(ServiceError):
    """The model is not loaded yet, or the service is draining (503 + Retry-After)."""

    code = "not_ready"

    def __init__(self, message: str, retry_after_s: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExceeded(ServiceError):
    """The request's deadline passed before its result was ready (504)."""

    code = "timeout"


class ClientDisconnected(Exception):
    """The client went away before its response was ready; nothing is sent (logged as 499)."""
