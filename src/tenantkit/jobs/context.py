"""``current_job()``: which job, and which attempt of it, the running task is."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["JobInfo", "current_job", "job_context"]


@dataclass(frozen=True, slots=True)
class JobInfo:
    """The job a task runs as.

    Attributes:
        task_id: The taskiq id of this attempt.
        task_name: The registered task name.
        attempt: 1 for the first attempt, 2 for the first retry... (1 again after a requeue).
        max_attempts: Attempts before the job goes to the dead-letter store.
    """

    task_id: str
    task_name: str
    attempt: int
    max_attempts: int

    @property
    def last_attempt(self) -> bool:
        """Whether a failure now dead-letters the job."""
        return self.attempt >= self.max_attempts


_current: contextvars.ContextVar[JobInfo | None] = contextvars.ContextVar("tenantkit_job", default=None)


def current_job() -> JobInfo | None:
    """The job the current task runs as, or ``None`` outside a job."""
    return _current.get()


@contextlib.contextmanager
def job_context(info: JobInfo | None) -> Iterator[None]:
    """Make ``info`` the current job inside the block."""
    token = _current.set(info)
    try:
        yield
    finally:
        _current.reset(token)
