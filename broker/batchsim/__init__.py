"""The simulated Tencent Cloud Batch engine. Pure asyncio-free domain code: it runs on the
injected clock's timers and publishes events through the broker's engine, never over HTTP."""

from .sim import BatchSim, SimSettings

__all__ = ["BatchSim", "SimSettings"]
