"""The store seam (base.py) and its implementations: memory.py over the in-process engine."""

from .base import (
    Counts,
    PeekedMessage,
    QueueInfo,
    Received,
    ReceivedMessage,
    Store,
    SubscriptionInfo,
    TopicInfo,
)
from .memory import MemoryStore

__all__ = ["Counts", "MemoryStore", "PeekedMessage", "QueueInfo", "Received", "ReceivedMessage", "Store",
           "SubscriptionInfo", "TopicInfo"]
