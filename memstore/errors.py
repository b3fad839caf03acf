"""Every error memstore raises on purpose: one tree, mapped to an exit status in one place."""

from __future__ import annotations


class MemstoreError(Exception):
    """Base of memstore's errors: the message says what went wrong and what to do."""

    exit_status = 1


class NotAStoreError(MemstoreError):
    """A path that should be a store is not one."""


class MemoryNotFoundError(MemstoreError):
    """No memory matches an id, prefix or path."""


class AmbiguousIdError(MemstoreError):
    """An id prefix matches more than one memory."""


class MalformedMemoryError(MemstoreError):
    """A memory file cannot be parsed."""

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.reason = message


class InvalidInputError(MemstoreError):
    """Input from the user or an agent that memstore cannot accept."""


class UsageError(InvalidInputError):
    """Arguments or options missing or given together when they cannot be: exit status 2."""

    exit_status = 2


class QuerySyntaxError(MemstoreError):
    """A search query that cannot be parsed: a bad argument, so a usage error (exit 2)."""

    exit_status = 2


class RepositoryStateError(MemstoreError):
    """The git repository is in a state where memstore must not write (merge, detached HEAD)."""


class LockTimeoutError(MemstoreError):
    """Another process held a lock for too long."""


class EditorError(MemstoreError):
    """The editor could not be run or exited with an error."""


class SyncError(MemstoreError):
    """A sync could not finish; local commits are kept and `mem status` says what happened."""


class NoRemoteError(SyncError):
    """The store has no remote (or not the one named)."""


class RemoteUnreachableError(SyncError):
    """The remote could not be reached or read."""


class AuthenticationError(SyncError):
    """The remote refused the credentials, or none were available."""


class HostKeyError(SyncError):
    """An ssh server whose host key ~/.ssh/known_hosts does not list, or lists as another key."""


class PushRejectedError(SyncError):
    """The remote refused the push."""


class UnrelatedHistoryError(SyncError):
    """The remote's history has nothing in common with the store's."""


class SyncConflictError(SyncError):
    """A change that memstore must not merge by itself (a file outside memories/)."""


class ConflictError(MemstoreError):
    """A memory still holds conflict blocks that need a person's choice."""


class IdentityError(MemstoreError):
    """The age identity is missing, unreadable, unsafe or not a key age can use."""


class RecipientsError(MemstoreError):
    """A recipients file does not parse, or a memory to encrypt has no recipients."""


class DecryptionError(MemstoreError):
    """An encrypted memory cannot be decrypted: another key, or damaged ciphertext."""


class NotARecipientError(DecryptionError):
    """An encrypted memory is sound but not encrypted to the identity at hand."""
