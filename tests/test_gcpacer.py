"""The GC pacer: automatic collection off, young cycles still collected, everything restored."""

from __future__ import annotations

import asyncio
import gc
import weakref

from broker.gcpacer import GcPacer


class Node:
    pass


async def test_pacer_collects_cycles_and_restores_the_collector():
    pacer = GcPacer(young_interval=0.01, full_interval=0.05)
    pacer.start()
    try:
        assert not gc.isenabled()
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle: reference counting alone cannot free it
        gone = weakref.ref(a)
        del a, b
        for _ in range(100):
            await asyncio.sleep(0.01)
            if gone() is None:
                break
        assert gone() is None
    finally:
        await pacer.close()
    assert gc.isenabled() and gc.get_freeze_count() == 0
