"""The inferstack policy pack's rules, one module per area.

Importable without starting a server: `all_policies()` is what `__main__.py` hands to
`PolicyPack`, and what tests and the offline engine inspect.
"""

from __future__ import annotations

from pulumi_policy import Policy

from . import cost, hardening, kubernetes, observability, residency, scanner, security, tags
from ._rules import RULES, Rule

PACK_NAME = "inferstack"
_MODULES = (residency, security, hardening, scanner, kubernetes, tags, cost, observability)


def all_policies() -> list[Policy]:
    return [v for m in _MODULES for v in vars(m).values() if isinstance(v, Policy)]


__all__ = ["PACK_NAME", "RULES", "Rule", "all_policies"]
