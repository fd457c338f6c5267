"""Payment rules as objects, and the registry scenario files name them from.

A :class:`PaymentRule` says how much each seller is paid, given the reports and the
allocation of a market, in every *market kind* it is defined for (``subset``,
``continuous``, ``per_query``, or a kind a plugin adds). It also carries the line the report
prints about it and when it is truthful. A new rule is one file: a payment function per
market kind it supports, and :func:`register_rule`::

    def pay_subset(market, bids, allocation):
        return np.where(allocation.selected, 1.1 * bids, 0.0)

    register_rule(PaymentRule("bonus", note="pays 110% of the report", truthful="never",
                              pay={"subset": pay_subset}))

A scenario may name the rule in ``market.payment_rules`` whenever its buyer's market kind
is one the rule supports; the scenario check says which kinds it supports otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: ``pay(market, bids, allocation) -> payments`` (one per seller; 0 for the unselected).
PayFunction = Callable[[Any, NDArray[np.float64], Any], NDArray[np.float64]]


@dataclass(frozen=True)
class PaymentRule:
    """A payment rule.

    Attributes:
        name: the name used in scenario files, tables and reports.
        note: what the rule pays, in one line (printed in the report after the name).
        truthful: when reporting one's true cost is a dominant strategy under the rule.
        pay: the payment function for each market kind the rule supports.
        truthful_exact: whether truthful reporting is a dominant strategy in every kind the
            rule supports under exact allocation without a reserve (tests audit such rules
            by brute force in every kind).
        notes: the line for a market kind whose definition differs from ``note``, keyed by
            the kind (``"per_query"``) or by kind and Shapley scope (``"per_query/all"``).
    """

    name: str
    note: str
    truthful: str
    pay: Mapping[str, PayFunction] = field(default_factory=dict)
    truthful_exact: bool = False
    notes: Mapping[str, str] = field(default_factory=dict)

    def supports(self, kind: str) -> bool:
        """Whether the rule is defined in markets of ``kind``."""
        return kind in self.pay

    def note_for(self, kind: str, shapley_scope: str = "selected") -> str:
        """The line the report prints for this rule in a market of ``kind``: the definition
        the numbers use there."""
        return self.notes.get(f"{kind}/{shapley_scope}", self.notes.get(kind, self.note))

    def payments(self, market: Any, bids: NDArray[np.float64], allocation: Any) -> NDArray[np.float64]:
        """Each seller's payment in ``market`` at ``bids`` and its ``allocation``."""
        if not self.supports(market.kind):
            raise ValueError(
                f"payment rule {self.name!r} is not defined for the {market.kind} market; "
                f"it is defined for: {', '.join(sorted(self.pay))}"
            )
        return np.asarray(self.pay[market.kind](market, bids, allocation), dtype=np.float64)


#: Every registered rule, by name, in the order of registration.
RULES: dict[str, PaymentRule] = {}


def register_rule(rule: PaymentRule) -> PaymentRule:
    """Add ``rule`` to :data:`RULES` (registering the same rule twice is harmless; another
    rule under a taken name is an error)."""
    known = RULES.get(rule.name)
    if known is not None and known is not rule:
        raise ValueError(f"a payment rule named {rule.name!r} is already registered")
    RULES[rule.name] = rule
    return rule


def get_rule(name: str | PaymentRule) -> PaymentRule:
    """The rule called ``name`` (a rule object is returned as it is)."""
    if isinstance(name, PaymentRule):
        return name
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"unknown payment rule {name!r}; choose one of {sorted(RULES)}") from None


def rules_for(kind: str) -> list[str]:
    """Names of the rules defined for markets of ``kind``."""
    return [name for name, rule in RULES.items() if rule.supports(kind)]
