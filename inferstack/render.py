"""Render the jinja2 templates in templates/ (cloud-init user data, startup scripts).

Rendering is pure: the planner calls it with decided values and the components receive text.
Undefined variables are errors, and every value that reaches a shell goes through `shquote`.
"""

from __future__ import annotations

import shlex
from functools import cache
from importlib import resources

import jinja2

# Engine arguments that the node fills in at boot, mapped to the shell expression that does it.
BOOT_TIME_ARGS = {"{tensor_parallel}": '"$TENSOR_PARALLEL"'}


def _shell_args(args: list[str]) -> str:
    return " ".join(BOOT_TIME_ARGS.get(a) or shlex.quote(a) for a in args)


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files("inferstack.templates"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["shquote"] = lambda v: shlex.quote(str(v))
    env.filters["shell_args"] = _shell_args
    return env


def render(template: str, **context: object) -> str:
    return _environment().get_template(template).render(**context)
