"""Entry point for `pulumi up -s <stack>`: load the stack's spec, build its resources."""

import pulumi

from inferstack.errors import SpecError
from inferstack.program import build
from inferstack.spec.loader import load_spec

spec_file = pulumi.Config("inferstack").require("spec")
try:
    loaded = load_spec(f"stacks/{spec_file}")
except SpecError as error:
    raise pulumi.RunError(error.render()) from None
for name, choice in sorted(loaded.shapes.items()):  # shapes the spec left out (planning.shapes)
    pulumi.log.info(
        f"inferstack chose {choice.field} {choice.chosen.shape if choice.chosen else '-'} for {name}: {choice.reason()}"
    )
build(loaded.spec, pulumi.get_stack())
