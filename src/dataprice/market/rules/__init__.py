"""Payment rules, one file each, registered by name (see :mod:`.base` to add one)."""

from __future__ import annotations

from dataprice.market.rules import loo, myerson, pay_as_bid, shapley, value_bought, vcg  # noqa: F401 - registers them
from dataprice.market.rules.base import RULES, PaymentRule, get_rule, register_rule, rules_for

#: The built-in rules, in the order scenario messages list them.
BUILT_IN = ("loo", "shapley", "myerson", "vcg", "pay_as_bid", "value_bought")
for _name in BUILT_IN:
    RULES[_name] = RULES.pop(_name)

__all__ = ["RULES", "PaymentRule", "get_rule", "register_rule", "rules_for"]
