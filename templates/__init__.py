"""Jinja2 templates for cloud-init user data and startup scripts, rendered by inferstack.render."""
