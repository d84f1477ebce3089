"""Guards and demo effect/compute handlers for the example workflows in this folder.

The CLI and the workers import ``handlers.py`` beside the charts (or the modules named in
``OMNINODE_HANDLERS`` instead), which registers these by name. The effects here stand in for
real integrations: they return plausible results and record what they were asked to do
in the worker's log, keyed by the idempotency key a real integration would pass on.
"""

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from app.core.guards import guard
from app.core.handlers import HandlerContext, NonRetryableError, compute, effect

log = logging.getLogger("omninode.demo")


@guard("is_trusted_customer")
def is_trusted_customer(data: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Customers of two years or more with a fair score skip manual review."""
    return int(data.get("customer_years", 0)) >= 2 and int(data.get("score", 0)) >= 600


def _ref(prefix: str, ctx: HandlerContext) -> str:
    return f"{prefix}_{hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:10]}"


def _did(what: str, data: Mapping[str, Any], ctx: HandlerContext) -> None:
    log.info("%s %s:%s key=%s input=%s", what, ctx.workflow_type, ctx.instance_id,
             ctx.idempotency_key, dict(data))


# order_fulfillment
@effect("charge_card")
async def charge_card(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    if float(data.get("amount", 0)) <= 0:
        raise NonRetryableError("amount must be positive")
    _did("charged", data, ctx)
    return {"charge_id": _ref("ch", ctx)}


@effect("refund_card")
async def refund_card(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    _did("refunded", data, ctx)
    return {"refund_id": _ref("re", ctx)}


@effect("reserve_stock")
async def reserve_stock(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    _did("reserved", data, ctx)
    return {"reservation": _ref("r", ctx)}


@effect("release_stock")
async def release_stock(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    _did("released", data, ctx)
    return {}


@compute("price_invoice")
def price_invoice(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    total = float(data.get("total", 0))
    net = round(total / 1.19, 2)
    return {"net": net, "vat": round(total - net, 2)}


@effect("send_invoice")
async def send_invoice(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    _did("invoiced", data, ctx)
    return {}


# shipment (invoked by order_fulfillment)
@effect("book_carrier")
async def book_carrier(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    _did("booked a carrier for", data, ctx)
    return {"booking": _ref("bk", ctx)}


@effect("cancel_carrier")
async def cancel_carrier(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    _did("cancelled the carrier booking of", data, ctx)
    return {}


@effect("print_label")
async def print_label(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    _did("printed the label for", data, ctx)
    return {"tracking": f"TRK-{data.get('order_id', '')}"}


# document_approval
@effect("notify_reviewers")
async def notify_reviewers(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    _did("notified reviewers of", data, ctx)
    return {}


@effect("send_reminder")
async def send_reminder(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    _did("reminded reviewers of", data, ctx)
    return {}


@effect("publish_document")
async def publish_document(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    _did("published", data, ctx)
    return {"url": f"https://docs.example/{_ref('doc', ctx)}"}


# loan_application
@compute("credit_score")
def credit_score(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """A deterministic stand-in score: larger amounts score lower."""
    return {"score": max(300, 850 - int(float(data.get("amount", 0)) // 100))}


@effect("assign_underwriter")
async def assign_underwriter(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    _did("assigned an underwriter to", data, ctx)
    return {}


@effect("disburse_funds")
async def disburse_funds(data: Mapping[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    _did("disbursed", data, ctx)
    return {"transfer_id": _ref("tr", ctx)}
