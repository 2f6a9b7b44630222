"""Findings about a spec, and the one error type a user mistake turns into.

Every check, from pydantic's field validators to the catalog checks, reports a `Finding` whose
`loc` is the path of the offending field in the spec. The loader turns paths into YAML line
numbers, so a user always reads ``file:line: path: message`` and never a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Loc = tuple[str | int, ...]


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """A '; did you mean X?' suffix when a close option exists, else ''.

    Among equally close options, the one nearest in length wins (then, as difflib does, the
    greater string).
    """
    scored = [
        (difflib.SequenceMatcher(None, word, option).ratio(), -abs(len(option) - len(word)), option)
        for option in options
    ]
    best = max((s for s in scored if s[0] >= 0.6), default=None)
    return f"; did you mean {best[2]!r}?" if best else ""


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(spec)"


@dataclass(frozen=True, order=True)
class Finding:
    """One thing wrong (or worth a warning) at one place in the spec."""

    loc: Loc
    message: str
    severity: Literal["error", "warning"] = "error"
    line: int | None = field(default=None, compare=False)

    def render(self, source: str | None = None) -> str:
        where = source or "spec"
        if self.line is not None:
            where = f"{where}:{self.line}"
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}: {prefix}{format_loc(self.loc)}: {self.message}"


class FieldError(ValueError):
    """Raised inside a pydantic validator to blame a field below the validated model.

    Pydantic puts a model validator's error on the model itself; a cross-field rule such as
    ``min <= max`` belongs on ``max``. The loader appends `field` to the error's location.
    """

    def __init__(self, field: str | int | Loc, message: str):
        super().__init__(message)
        self.field: Loc = tuple(field) if isinstance(field, tuple) else (field,)
        self.message = message


class SpecError(Exception):
    """A spec that cannot be planned. Carries every error found, not just the first."""

    exit_code = 2

    def __init__(self, findings: list[Finding], source: str | None = None):
        self.findings = sorted(findings, key=lambda f: (f.line or 0, format_loc(f.loc)))
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(f.render(self.source) for f in self.findings)


class CloudCheckError(Exception):
    """What a lookup found in the cloud rules the deployment out (a bucket without uniform
    access, a network that already has its one proxy-only subnet). Raised while the program
    runs, under the offline engine or `pulumi preview`; the message names the thing and the fix."""

    exit_code = 2
