"""Pulumi components, one per capability and provider; they only turn decided values into resources."""
