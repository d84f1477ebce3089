"""No-op effect handlers for the benchmark workflow."""

import asyncio
from collections.abc import Mapping
from typing import Any

from app.core.handlers import HandlerContext, effect


def _noop(name: str) -> None:
    @effect(name)
    async def run(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
        return {}


for _name in ("bench_a", "bench_b", "bench_c"):
    _noop(_name)


@effect("bench_slow")
async def bench_slow(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """A slow external call, for the back-pressure scenario."""
    await asyncio.sleep(0.05)
    return {}
