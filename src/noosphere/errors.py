"""One exception tree for noosphere. Every error carries a stable ``code`` and an HTTP status.

    NoosphereError                      code             status
    ├── InvalidRequest                  invalid_request   400
    │   ├── ConfigError                 invalid_config    400
    │   └── EmbedderMismatch            embedder_mismatch 409
    ├── Unauthenticated                 unauthenticated   401
    ├── PermissionDenied                permission_denied 403
    │   ├── BudgetExhausted             budget_exhausted  403
    │   ├── ApprovalDenied              approval_denied   403  (rejected, or timed out)
    │   ├── ApprovalRequired            approval_required 403  (a person decides; ``approval_id``)
    │   └── WrongSecret                 wrong_secret      403  (not the conversation secret)
    ├── NotFound                        not_found         404
    │   └── ModelNotFound               model_not_found   404
    ├── Conflict                        conflict          409
    │   └── ArgumentsChanged            arguments_changed 409  (differ from the approved ones)
    ├── PayloadTooLarge                 payload_too_large 413
    ├── RateLimited                     rate_limited      429  (Retry-After)
    ├── WorkerFailed                    worker_failed     502  (code: the worker's own)
    ├── TimedOut                        timeout           504
    └── Unavailable                     unavailable       503
        ├── NoCapacity                  no_capacity       503  (Retry-After)
        ├── EmbedderUnavailable         embedder_unavailable 503
        └── StorageUnavailable          storage_unavailable  503

The HTTP layer answers every one of them as ``{"error": {"code", "message"}}`` with its status
(plus the error's ``details``, such as ``approval_id``); MCP tools answer them as tool errors
carrying the same code and message.
"""

from __future__ import annotations


class NoosphereError(Exception):
    """Base of every error noosphere raises on purpose."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after  # seconds; sent as Retry-After where set
        self.details: dict[str, str] = {}  # more fields of the error object, for clients to act on


class InvalidRequest(NoosphereError):
    code = "invalid_request"
    status = 400


class ConfigError(InvalidRequest):
    code = "invalid_config"


class EmbedderMismatch(InvalidRequest):
    code = "embedder_mismatch"
    status = 409


class Unauthenticated(NoosphereError):
    code = "unauthenticated"
    status = 401


class PermissionDenied(NoosphereError):
    code = "permission_denied"
    status = 403


class BudgetExhausted(PermissionDenied):
    code = "budget_exhausted"


class ApprovalDenied(PermissionDenied):
    code = "approval_denied"


class ApprovalRequired(PermissionDenied):
    """A person must approve the call first; the caller repeats it, unchanged, once they have."""

    code = "approval_required"

    def __init__(self, message: str, approval_id: str, expires_at: str) -> None:
        super().__init__(message)
        self.details = {"approval_id": approval_id, "expires_at": expires_at}


class WrongSecret(PermissionDenied):
    """The conversation secret given is not the one the principal's conversations are sealed with."""

    code = "wrong_secret"


class NotFound(NoosphereError):
    code = "not_found"
    status = 404


class ModelNotFound(NotFound):
    code = "model_not_found"


class RateLimited(NoosphereError):
    code = "rate_limited"
    status = 429


class WorkerFailed(NoosphereError):
    code = "worker_failed"
    status = 502


class ToolFailed(NoosphereError):
    """A tool (an MCP server's, say) ran and reported failure."""

    code = "tool_failed"
    status = 502


class Conflict(NoosphereError):
    code = "conflict"
    status = 409


class ArgumentsChanged(Conflict):
    code = "arguments_changed"


class PayloadTooLarge(NoosphereError):
    code = "payload_too_large"
    status = 413


class TimedOut(NoosphereError):
    code = "timeout"
    status = 504


class Unavailable(NoosphereError):
    code = "unavailable"
    status = 503


class NoCapacity(Unavailable):
    code = "no_capacity"


class EmbedderUnavailable(Unavailable):
    code = "embedder_unavailable"


class StorageUnavailable(Unavailable):
    code = "storage_unavailable"
