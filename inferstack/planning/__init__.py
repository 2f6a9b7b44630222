"""Pure planning: every decision made from the spec as plain values, no Pulumi here."""
