"""The deployment spec: models, the YAML loader with line numbers, and cross-section checks."""
