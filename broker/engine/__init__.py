"""The queue engine: pure asyncio, no HTTP, no files, no wire formats (design.md rule 1)."""

from .broker import Broker, Limits
from .queue import Message, Queue
from .settings import QueueSettings, TopicSettings
from .topic import Subscription, Topic, TopicMessage

__all__ = [
    "Broker", "Limits", "Message", "Queue", "QueueSettings", "Subscription", "Topic", "TopicMessage", "TopicSettings",
]
