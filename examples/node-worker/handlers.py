"""The Python side of the node-worker example: the effect of ``rss/greeting.yaml`` that runs
on the default task queue. The other effect, ``compose_greeting`` on queue ``node``, is
served by ``worker.js``; this module registers no handler for it, so a Python worker
loading it does not serve that queue.

Run a worker with ``OMNINODE_RSS_PATH=examples/node-worker/rss`` (this file sits beside the
charts' folder, so name it: ``OMNINODE_HANDLERS=examples/node-worker/handlers.py``).
"""

import os
from collections.abc import Mapping
from typing import Any

from app.core.handlers import HandlerContext, NonRetryableError, effect


@effect("deliver_greeting")
async def deliver_greeting(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Stands in for sending the greeting somewhere; says who delivered it."""
    greeting = data.get("greeting")
    if not isinstance(greeting, str) or not greeting:
        raise NonRetryableError("no greeting to deliver")
    return {"served_by": "python", "pid": os.getpid(), "delivery": ctx.idempotency_key}
