"""inferstack: infrastructure as code for AI inference stacks, on Pulumi."""

__version__ = "0.1.0"
