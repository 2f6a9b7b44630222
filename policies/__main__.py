"""The inferstack policy pack. Only builds the pack: the rules live in inferstack_policies."""

from pulumi_policy import EnforcementLevel, PolicyPack

from inferstack_policies import PACK_NAME, all_policies

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=all_policies())
