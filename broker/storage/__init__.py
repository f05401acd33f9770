"""Durable storage: the write-ahead log with group commit, snapshots and crash recovery.

Nothing here knows the engine: records and snapshots are plain msgpack-able objects
(design.md rule 1 works both ways).
"""

from .wal import CorruptData, DataDirLocked, Recovered, StorageError, Wal

__all__ = ["CorruptData", "DataDirLocked", "Recovered", "StorageError", "Wal"]
