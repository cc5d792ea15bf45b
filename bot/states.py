"""The states a stored row goes through, one enum per table.

They are ``StrEnum``s: a member *is* its text, so it goes into SQL parameters and compares
with what a query returns as it is.
"""

from __future__ import annotations

from enum import StrEnum


class UploadState(StrEnum):
    ACTIVE = "active"
    DELETED = "deleted"
    EXPIRED = "expired"
    FAILED = "failed"


class JobState(StrEnum):
    HELD = "held"  # an album item waiting for someone to ask for the album
    PENDING = "pending"  # to do (claimed by a worker while its lease lasts)
    DONE = "done"
    FAILED = "failed"
    ABANDONED = "abandoned"  # gave up after too many attempts: answered as a failure
    DROPPED = "dropped"  # an album nobody asked for: never answered


class JobOutcome(StrEnum):
    UPLOADED = "uploaded"
    DEDUP = "dedup"
    FAILED = "failed"


class BatchState(StrEnum):
    OPEN = "open"  # its jobs are recorded, its answer is not
    ANSWERED = "answered"  # its answer is in the outbox (or went back to a direct caller)
    DROPPED = "dropped"


class OutboxState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # the platform refused it for good (logged); never retried


class Visibility(StrEnum):
    PUBLIC = "public"  # everyone in the chat sees it: never a delete link
    PRIVATE = "private"  # only the owner sees it: delete links, link previews off
