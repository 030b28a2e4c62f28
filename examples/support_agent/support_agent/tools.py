"""The agent's tools: plain functions over a read-only table of orders shipped with the example.

They never change the table (a run scores many samples at once): `cancel_order` says what a
cancellation would do. Blocking functions are fine: raygrad runs them in a worker thread.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

ORDERS_FILE = Path(__file__).parent / "orders.json"


@lru_cache(maxsize=1)
def _orders() -> dict[str, dict]:
    return json.loads(ORDERS_FILE.read_text())


def get_order(order_id: str) -> str:
    """The status, items and total of an order, by its id (like A17)."""
    order = _orders().get(order_id.strip().upper())
    if order is None:
        return f"no order {order_id}"
    return f"order {order_id}: {order['status']}, {', '.join(order['items'])}, total ${order['total']:.2f}"


def track_shipment(order_id: str) -> str:
    """Where a shipped order is and when it arrives."""
    order = _orders().get(order_id.strip().upper())
    if order is None or order["status"] != "shipped":
        return f"order {order_id} has not shipped"
    return f"order {order_id} arrives on {order['arrives']}"


def cancel_order(order_id: str, reason: str = "") -> str:
    """Cancel an order that has not shipped yet."""
    order = _orders().get(order_id.strip().upper())
    if order is None:
        return f"no order {order_id}"
    if order["status"] != "pending":
        return f"order {order_id} cannot be cancelled: it is {order['status']}"
    return f"order {order_id} cancelled, ${order['total']:.2f} refunded"


def file_ticket(summary: str) -> str:
    """Hand a problem the tools cannot solve to a human, with a one-line summary."""
    return f"ticket filed: {summary[:80]}"
