"""The inferstack policy pack directory (`pulumi preview --policy-pack policies`).

This file only lets an installed inferstack ship the pack as `inferstack.policy_pack`, so the
offline engine can start it; Pulumi runs `__main__.py`, which builds the pack.
"""
