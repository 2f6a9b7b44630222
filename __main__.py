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
build(loaded.spec, pulumi.get_stack())
