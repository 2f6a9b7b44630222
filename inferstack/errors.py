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

# A value quoted back in a message keeps this many characters of its repr: enough to recognise,
# short enough that a 5 MB value from a pull request cannot flood a CI log.
QUOTE_CHARS = 60
# Any message at all is cut to this length, the last guard for a value that reached a message
# by a path `quote` did not see.
MESSAGE_CHARS = 2000
_SUGGEST_CHARS = 256
# A spec with thousands of mistakes gets the first hundred and a count: enough to act on, and
# neither a flooded log nor minutes spent on did-you-mean suggestions for the rest.
MAX_FINDINGS = 100


def quote(value: object) -> str:
    """`repr(value)`, shortened when long: ``'aaaa…' (5242880 characters)``.

    Every message that echoes a user's value goes through here (the loader also rewrites the
    plain reprs that spec checks write with `!r`), so one limit holds for all of them.
    """
    if isinstance(value, str) and len(value) > QUOTE_CHARS:
        return f"{value[:QUOTE_CHARS]!r}… ({len(value)} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * QUOTE_CHARS:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= QUOTE_CHARS else f"{text[:QUOTE_CHARS]}… ({len(text)} characters)"


def clip(message: str, limit: int = MESSAGE_CHARS) -> str:
    """A message no longer than `limit`: its start and end, with what was cut counted."""
    if len(message) <= limit:
        return message
    keep = limit // 2
    return f"{message[:keep]} …({len(message) - 2 * keep} characters cut)… {message[-keep:]}"


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """A '; did you mean X?' suffix when a close option exists, else ''.

    Among equally close options, the one nearest in length wins (then, as difflib does, the
    greater string). Names longer than `_SUGGEST_CHARS` get no suggestion: difflib's matching
    is quadratic at worst, and a 5 MB key is no typo. `real_quick_ratio` (the lengths alone)
    skips options that cannot reach the cut-off.
    """
    if len(word) > _SUGGEST_CHARS:
        return ""
    scored = []
    for option in options:
        if len(option) > _SUGGEST_CHARS:
            continue
        matcher = difflib.SequenceMatcher(None, word, option)
        if matcher.real_quick_ratio() >= 0.6:
            scored.append((matcher.ratio(), -abs(len(option) - len(word)), option))
    best = max((s for s in scored if s[0] >= 0.6), default=None)
    return f"; did you mean {quote(best[2])}?" if best else ""


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if len(part) <= QUOTE_CHARS else quote(part)
            out += f".{name}" if out else name
    return out or "(spec)"


@dataclass(frozen=True, order=True)
class Finding:
    """One thing wrong (or worth a warning) at one place in the spec."""

    loc: Loc
    message: str
    severity: Literal["error", "warning"] = "error"
    line: int | None = field(default=None, compare=False)
    # The file the line is in, when it is not the spec's own: a base the spec `extends`.
    source: str | None = field(default=None, compare=False)

    def render(self, source: str | None = None) -> str:
        where = self.source or source or "spec"
        if self.line is not None:
            where = f"{where}:{self.line}"
        prefix = "warning: " if self.severity == "warning" else ""
        return clip(f"{where}: {prefix}{format_loc(self.loc)}: {self.message}")


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

    def __init__(self, findings: list[Finding], source: str | None = None, total: int | None = None):
        self.findings = sorted(findings, key=lambda f: (f.line or 0, format_loc(f.loc)))[:MAX_FINDINGS]
        # How many were found, when the caller stopped working some out (see `MAX_FINDINGS`).
        self.total = max(total or 0, len(findings))
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f.render(self.source) for f in self.findings]
        if self.total > len(self.findings):
            lines.append(f"{self.source or 'spec'}: ... and {self.total - len(self.findings)} more error(s) not shown")
        return "\n".join(lines)


class CloudCheckError(Exception):
    """What a lookup found in the cloud rules the deployment out (a bucket without uniform
    access, a network that already has its one proxy-only subnet). Raised while the program
    runs, under the offline engine or `pulumi preview`; the message names the thing and the fix."""

    exit_code = 2
