"""Named guards for the example workflows in this folder.

The CLI and the workers import the ``*.py`` files beside the charts (or the modules named
in ``OMNINODE_HANDLERS``), which registers these guards by name.
"""

from collections.abc import Mapping
from typing import Any

from app.core.guards import guard


@guard("is_trusted_customer")
def is_trusted_customer(data: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Customers of two years or more with a fair score skip manual review."""
    return int(data.get("customer_years", 0)) >= 2 and int(data.get("score", 0)) >= 600
