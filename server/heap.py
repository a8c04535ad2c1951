"""Short full garbage collections: what the big loads leave behind is moved where no collection walks.

A full (generation 2) collection walks every object the collector tracks, on the event loop that also answers MCP
requests. Once the MCP SDK, an LLM SDK and the price table are loaded a server tracks about 125,000 objects, nearly
all of them modules, classes, schemas and tables that live as long as the process; each full pass stalled the loop
for 50-65 ms, and those passes were the slowest `get_progress` answers while a job ran (issue 19). `gc.freeze()`
moves every object that exists now to the permanent generation, which no collection walks. A frozen object is
still freed by reference counting; only a reference cycle among frozen objects is never collected, so freezing
follows a collection, right after a big load, when what exists is what stays.
"""

from __future__ import annotations

import gc
import threading

_frozen_after: set[str] = set()
_lock = threading.Lock()


def freeze_after(load: str) -> None:
    """The first time `load` ('start-up', an SDK's name) has finished in this process: collect the garbage, then
    freeze every object left. Later calls for the same load do nothing."""
    with _lock:
        if load in _frozen_after:
            return
        _frozen_after.add(load)
        gc.collect()
        gc.freeze()
