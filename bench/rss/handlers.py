"""No-op effect handlers for the benchmark workflow."""

from collections.abc import Mapping
from typing import Any

from app.core.handlers import HandlerContext, effect


def _noop(name: str) -> None:
    @effect(name)
    async def run(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
        return {}


for _name in ("bench_a", "bench_b", "bench_c"):
    _noop(_name)
