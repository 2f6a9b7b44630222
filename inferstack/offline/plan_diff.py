"""What a change does to a stack: two plan documents (`Plan.to_json()` or saved plans from
`inferstack plan --out`) compared resource by resource, with the cost and the policy verdict
before and after. Pure logic and three renderers (text for a terminal, markdown for a pull
request comment, JSON for tools); the CLI plans specs and reads files.

- A resource is matched by its URN without the stack segment (`<project>::<type chain>::<name>`),
  so the dev stack of main and the dev stack of a pull request match, and so do two stacks. A
  resource whose type chain changed (a new parent component) is removed and added: Pulumi gives it
  another URN too, and replaces it unless an alias says otherwise.
- Changed inputs are dotted paths (`tags.environment`, `ingress[0].cidrBlocks`); an input that
  holds JSON text (an IAM policy, a dashboard body) is compared inside (`policy{json}.Statement`).
  A value that is a secret on either side reads `[secret]`: a saved plan never holds a secret in
  clear, and a masked value cannot show whether it changed, so two secrets compare equal.
- Counts are of custom resources, what a cloud bills and the policy pack checks; component
  resources (`custom: false`, Pulumi's grouping of them) are counted apart, as they create nothing.
- Cost: each target's hourly figure at its minimum and maximum capacity, as a month (730 hours),
  and the month its traffic profile's rehearsal takes when the spec has one.
- Policy: violations are matched by (policy, resource without the stack, message). A plan with no
  verdict (`inferstack plan --skip-policy`) makes that side unknown: nothing is called new or
  fixed against it; HEAD's mandatory violations still block when BASE is unknown (fail closed).

Every list is sorted, so the same two plans give byte-identical output.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from inferstack.errors import clip, quote
from inferstack.planning.cost import HOURS_PER_MONTH

SECRET = "[secret]"  # how the offline engine masks a secret (inferstack.offline.mocks.SECRET)
MARKER = "<!-- inferstack-diff -->"  # the first line of a comment the workflow posts
STACK_MARKER = "<!-- inferstack-diff:{stack} -->"  # the first line of one stack's markdown
# GitHub refuses a comment over 65536 characters; one stack's markdown stays well under it, so the
# workflow can put a few stacks in one comment.
MARKDOWN_CHARS = 30_000
DETAIL_LINES = 400  # lines in the folded sections before the rest is counted, not shown
VIOLATION_LINES = 50  # violations listed unfolded before the rest is counted
MESSAGE_CHARS = 300  # a violation message in a comment
_JSON_TEXT_CHARS = 1 << 20  # an input holding JSON text is compared inside when at most this long
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_LINE_HUNKS = 20  # changed hunks shown per script; a rewrite says so after these
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$@/-]+")


class _Absent:
    """A key or list element one side does not have."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()


def identity(urn: str) -> str:
    """A URN without its stack: `urn:pulumi:dev::inferstack::aws:s3/bucket:Bucket::logs` reads
    `inferstack::aws:s3/bucket:Bucket::logs`. Anything that is not a URN stays as it is."""
    if urn.startswith("urn:pulumi:") and urn.count("::") >= 3:
        return urn.split("::", 1)[1]
    return urn


def show(value: Any) -> str:
    """A value as a diff line prints it: secrets masked, long values shortened."""
    if value is ABSENT:
        return "(absent)"
    if value == SECRET:
        return SECRET
    if isinstance(value, str):
        return quote(value)
    return clip(json.dumps(value, sort_keys=True), 120) if isinstance(value, (dict, list)) else quote(value)


@dataclass(frozen=True, order=True)
class Change:
    """One input or option that differs: its path and both values as shown (masked, shortened)."""

    path: str
    before: str
    after: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "before": self.before, "after": self.after}


@dataclass(frozen=True, order=True)
class ResourceDiff:
    key: str  # the URN without the stack
    type: str
    name: str
    custom: bool
    inputs: tuple[Change, ...] = ()
    options: tuple[Change, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "resource": self.key,
            "type": self.type,
            "name": self.name,
            "custom": self.custom,
            "inputs": [c.to_json() for c in self.inputs],
            "options": [c.to_json() for c in self.options],
        }


@dataclass(frozen=True)
class CostLine:
    """A target's (or the stack's) monthly cost in USD before and after; None: unpriced or absent."""

    target: str
    before_min: float | None
    before_max: float | None
    after_min: float | None
    after_max: float | None
    before_rehearsed: float | None = None
    after_rehearsed: float | None = None

    @staticmethod
    def _delta(before: float | None, after: float | None) -> float | None:
        return None if before is None or after is None else round(after - before, 2)

    @property
    def delta_min(self) -> float | None:
        return self._delta(self.before_min, self.after_min)

    @property
    def delta_max(self) -> float | None:
        return self._delta(self.before_max, self.after_max)

    @property
    def delta_rehearsed(self) -> float | None:
        return self._delta(self.before_rehearsed, self.after_rehearsed)

    @property
    def changed(self) -> bool:
        return (self.before_min, self.before_max, self.before_rehearsed) != (
            self.after_min,
            self.after_max,
            self.after_rehearsed,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "monthlyUsdAtMin": {"before": self.before_min, "after": self.after_min, "delta": self.delta_min},
            "monthlyUsdAtMax": {"before": self.before_max, "after": self.after_max, "delta": self.delta_max},
            "monthlyUsdRehearsed": {
                "before": self.before_rehearsed,
                "after": self.after_rehearsed,
                "delta": self.delta_rehearsed,
            },
        }


@dataclass(frozen=True, order=True)
class PolicyItem:
    policy: str
    resource: str  # the URN without the stack; "(stack)" for a stack-wide violation
    message: str
    enforcement: str
    severity: str
    before: str = ""  # for an escalated violation: its enforcement in BASE

    @property
    def mandatory(self) -> bool:
        return self.enforcement == "mandatory"

    def to_json(self) -> dict[str, str]:
        out = {
            "policy": self.policy,
            "resource": self.resource,
            "message": self.message,
            "enforcement": self.enforcement,
            "severity": self.severity,
        }
        if self.before:
            out["enforcementBefore"] = self.before
        return out


@dataclass
class PolicyDiff:
    base_known: bool
    head_known: bool
    new: list[PolicyItem] = field(default_factory=list)
    fixed: list[PolicyItem] = field(default_factory=list)
    escalated: list[PolicyItem] = field(default_factory=list)  # in both, mandatory only in HEAD
    # in both (same policy, same resource), the message reworded: a limit exceeded by less, say
    reworded: list[PolicyItem] = field(default_factory=list)
    unchanged: int = 0
    unverified: list[PolicyItem] = field(default_factory=list)  # HEAD's, when BASE's verdict is unknown
    base_counts: tuple[int, int] | None = None  # (mandatory, advisory); None: unknown
    head_counts: tuple[int, int] | None = None

    @property
    def blocking(self) -> list[PolicyItem]:
        """What fails the check: mandatory violations HEAD brings (or might bring, BASE unknown)."""
        return sorted([v for v in self.new + self.unverified if v.mandatory] + self.escalated)

    def to_json(self) -> dict[str, Any]:
        def counts(c: tuple[int, int] | None) -> dict[str, int] | None:
            return None if c is None else {"mandatory": c[0], "advisory": c[1]}

        return {
            "baseKnown": self.base_known,
            "headKnown": self.head_known,
            "base": counts(self.base_counts),
            "head": counts(self.head_counts),
            "new": [v.to_json() for v in self.new],
            "fixed": [v.to_json() for v in self.fixed],
            "escalated": [v.to_json() for v in self.escalated],
            "reworded": [v.to_json() for v in self.reworded],
            "unverified": [v.to_json() for v in self.unverified],
            "unchanged": self.unchanged,
            "blocking": len(self.blocking),
        }


@dataclass
class PlanDiff:
    base_stack: str
    head_stack: str
    base_resources: int  # custom resources in BASE
    head_resources: int
    base_components: int
    head_components: int
    added: list[ResourceDiff]
    removed: list[ResourceDiff]
    changed: list[ResourceDiff]
    cost: list[CostLine]  # per target
    total: CostLine
    policy: PolicyDiff

    def counts(self, custom: bool = True) -> dict[str, int]:
        return {
            "added": sum(r.custom == custom for r in self.added),
            "removed": sum(r.custom == custom for r in self.removed),
            "changed": sum(r.custom == custom for r in self.changed),
        }

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.total.changed) and not (
            self.policy.new or self.policy.fixed or self.policy.escalated or self.policy.reworded
        )

    @property
    def blocking(self) -> list[PolicyItem]:
        return self.policy.blocking


# -- comparing ------------------------------------------------------------------------------------


def _key_path(path: str, key: str) -> str:
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _json_text(value: Any) -> Any:
    """The parsed document when `value` is JSON text of an object or array, else ABSENT."""
    if not isinstance(value, str) or len(value) > _JSON_TEXT_CHARS or value.lstrip()[:1] not in ("{", "["):
        return ABSENT
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return ABSENT


def _text_lines(value: Any) -> tuple[str, list[str]] | None:
    """A script or config held in an input, as lines: cloud-init user data (base64, as EC2 takes
    it) or a startup script (plain text). None for anything else, which is compared whole."""
    if not isinstance(value, str) or len(value) > _JSON_TEXT_CHARS:
        return None
    if "\n" in value:
        return "lines", value.splitlines()
    if len(value) >= 64 and _BASE64.fullmatch(value):
        try:
            text = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if "\n" in text:
            return "base64", text.splitlines()
    return None


def _around_change(old: str, new: str, context: int = 20) -> tuple[str, str]:
    """Two long lines cut to where they differ (with `context` characters around it), so the
    change is not past the end of a shortened value: '…--max-num-seqs 64 --port 8000'."""
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end = 0
    while end < min(len(old), len(new)) - start and old[-1 - end] == new[-1 - end]:
        end += 1
    lo = max(0, start - context)

    def cut(text: str) -> str:
        hi = len(text) - max(0, end - context)
        return ("…" if lo else "") + text[lo:hi] + ("…" if hi < len(text) else "")

    return cut(old), cut(new)


def _line_changes(before: list[str], after: list[str], prefix: str) -> list[Change]:
    """What changed between two scripts, a hunk a change, by line number (HEAD's)."""
    out = []
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        where = f"{prefix}[line {j1 + 1}]" if j2 > j1 else f"{prefix}[line {i1 + 1} of BASE]"
        old, new = _around_change("\n".join(before[i1:i2]), "\n".join(after[j1:j2]))
        out.append(Change(where, show(old) if i2 > i1 else "(absent)", show(new) if j2 > j1 else "(absent)"))
        if len(out) >= _LINE_HUNKS:
            out.append(Change(f"{prefix}[…]", "", "more changes not shown"))
            break
    return out


def _compare(before: Any, after: Any, path: str, out: list[Change]) -> None:
    if before == after:
        return
    if before == SECRET or after == SECRET:
        out.append(Change(path or "(value)", SECRET, SECRET))
    elif isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            _compare(before.get(key, ABSENT), after.get(key, ABSENT), _key_path(path, str(key)), out)
    elif isinstance(before, list) and isinstance(after, list):
        for i in range(max(len(before), len(after))):
            _compare(
                before[i] if i < len(before) else ABSENT, after[i] if i < len(after) else ABSENT, f"{path}[{i}]", out
            )
    else:
        parsed_before, parsed_after = _json_text(before), _json_text(after)
        if parsed_before is not ABSENT and parsed_after is not ABSENT:
            inner: list[Change] = []
            _compare(parsed_before, parsed_after, "", inner)
            prefix = f"{path}{{json}}"
            out += [
                Change(prefix + (c.path if c.path.startswith("[") else f".{c.path}"), c.before, c.after) for c in inner
            ]
            return
        lines_before, lines_after = _text_lines(before), _text_lines(after)
        if lines_before is not None and lines_after is not None and lines_before[0] == lines_after[0]:
            out += _line_changes(lines_before[1], lines_after[1], f"{path}{{{lines_before[0]}}}")
            return
        out.append(Change(path or "(value)", show(before), show(after)))


def input_changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[Change, ...]:
    out: list[Change] = []
    _compare(before, after, "", out)
    return tuple(out)


def _options(resource: dict[str, Any]) -> dict[str, Any]:
    """The options a reviewer cares about, with URNs taken without their stack."""
    o = resource.get("options") or {}
    return {
        "protect": bool(o.get("protect")),
        "deleteBeforeReplace": bool(o.get("deleteBeforeReplace")),
        "retainOnDelete": bool(o.get("retainOnDelete")),
        "ignoreChanges": sorted(str(x) for x in o.get("ignoreChanges") or []),
        "dependsOn": sorted(identity(str(x)) for x in o.get("dependsOn") or []),
        "provider": identity(str(resource["provider"])) if resource.get("provider") else None,
    }


def option_changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[Change, ...]:
    a, b = _options(before), _options(after)
    return tuple(Change(k, show(a[k]), show(b[k])) for k in sorted(a) if a[k] != b[k])


def _entry(key: str, r: dict[str, Any], inputs: tuple[Change, ...] = (), options: tuple[Change, ...] = ()):
    return ResourceDiff(key, str(r.get("type", "")), str(r.get("name", "")), bool(r.get("custom")), inputs, options)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _monthly(hourly: Any) -> float | None:
    h = _number(hourly)
    return None if h is None else round(h * HOURS_PER_MONTH, 2)


def _cost_of(doc: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    section = doc.get("cost")
    if not isinstance(section, dict):
        return {}, {}
    rows = section.get("targets")
    targets = (
        {str(t["target"]): t for t in rows if isinstance(t, dict) and "target" in t} if isinstance(rows, list) else {}
    )
    total = section.get("total")
    return targets, total if isinstance(total, dict) else {}


def _cost_line(name: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> CostLine:
    """A target one side does not have costs nothing on that side (unpriced is None, not 0)."""
    none = {"hourlyUsdAtMin": 0.0, "hourlyUsdAtMax": 0.0}
    b = before if before is not None else {**none, "monthlyUsd": 0.0 if (after or {}).get("monthlyUsd") else None}
    a = after if after is not None else {**none, "monthlyUsd": 0.0 if (before or {}).get("monthlyUsd") else None}
    return CostLine(
        target=name,
        before_min=_monthly(b.get("hourlyUsdAtMin")),
        before_max=_monthly(b.get("hourlyUsdAtMax")),
        after_min=_monthly(a.get("hourlyUsdAtMin")),
        after_max=_monthly(a.get("hourlyUsdAtMax")),
        before_rehearsed=_number(b.get("monthlyUsd")),
        after_rehearsed=_number(a.get("monthlyUsd")),
    )


def _violations(doc: dict[str, Any]) -> list[PolicyItem] | None:
    """A plan's violations, or None when it holds no verdict (planned with --skip-policy)."""
    section = doc.get("policy")
    if not isinstance(section, dict) or not isinstance(section.get("violations"), list):
        return None
    out = []
    for v in section["violations"]:
        if not isinstance(v, dict):
            continue
        urn = str(v.get("urn") or "")
        out.append(
            PolicyItem(
                policy=str(v.get("policy", "")),
                resource=identity(urn) if urn else "(stack)",
                message=str(v.get("message", "")),
                enforcement=str(v.get("enforcement", "")),
                severity=str(v.get("severity", "")),
            )
        )
    return sorted(set(out))


def _counts(items: list[PolicyItem] | None) -> tuple[int, int] | None:
    if items is None:
        return None
    mandatory = sum(v.mandatory for v in items)
    return mandatory, len(items) - mandatory


def diff_policy(base_doc: dict[str, Any], head_doc: dict[str, Any]) -> PolicyDiff:
    base, head = _violations(base_doc), _violations(head_doc)
    result = PolicyDiff(base is not None, head is not None, base_counts=_counts(base), head_counts=_counts(head))
    if head is None:
        return result
    if base is None:
        result.unverified = head
        return result

    # A violation is the same one while its policy and resource are: its message may carry a
    # number (64 GPUs over a limit of 8) that a pull request improves without fixing it all, and
    # that is neither a new violation nor a fix.
    def groups(items: list[PolicyItem]) -> dict[tuple[str, str], list[PolicyItem]]:
        out: dict[tuple[str, str], list[PolicyItem]] = {}
        for v in items:
            out.setdefault((v.policy, v.resource), []).append(v)
        return out

    before, after = groups(base), groups(head)
    result.new = sorted(v for k, vs in after.items() if k not in before for v in vs)
    result.fixed = sorted(v for k, vs in before.items() if k not in after for v in vs)
    for k in sorted(set(after) & set(before)):
        old_messages = {v.message for v in before[k]}
        was_mandatory = any(v.mandatory for v in before[k])
        for v in after[k]:
            if v.message not in old_messages:
                result.reworded.append(v)
            else:
                result.unchanged += 1
            if v.mandatory and not was_mandatory:
                result.escalated.append(
                    PolicyItem(
                        v.policy, v.resource, v.message, v.enforcement, v.severity, before=before[k][0].enforcement
                    )
                )
    return result


def diff_plans(base_doc: dict[str, Any], head_doc: dict[str, Any]) -> PlanDiff:
    """Compare two plan documents (already checked to be plans: see `PlanDocument`)."""
    base = {identity(str(r["urn"])): r for r in base_doc.get("resources") or []}
    head = {identity(str(r["urn"])): r for r in head_doc.get("resources") or []}
    added = [_entry(k, head[k]) for k in sorted(set(head) - set(base))]
    removed = [_entry(k, base[k]) for k in sorted(set(base) - set(head))]
    changed = []
    for k in sorted(set(base) & set(head)):
        b, a = base[k], head[k]
        inputs = input_changes(b.get("inputs") or {}, a.get("inputs") or {})
        options = option_changes(b, a)
        if inputs or options or bool(b.get("custom")) != bool(a.get("custom")):
            changed.append(_entry(k, a, inputs, options))
    (bt, btotal), (at, atotal) = _cost_of(base_doc), _cost_of(head_doc)
    # A side with nothing in it (a stack new or removed in the pull request) costs nothing.
    nothing = {"hourlyUsdAtMin": 0.0, "hourlyUsdAtMax": 0.0, "monthlyUsd": 0.0}
    btotal = btotal or (nothing if not base and not bt else btotal)
    atotal = atotal or (nothing if not head and not at else atotal)
    return PlanDiff(
        base_stack=str(base_doc.get("stack", "")),
        head_stack=str(head_doc.get("stack", "")),
        base_resources=sum(bool(r.get("custom")) for r in base.values()),
        head_resources=sum(bool(r.get("custom")) for r in head.values()),
        base_components=sum(not r.get("custom") for r in base.values()),
        head_components=sum(not r.get("custom") for r in head.values()),
        added=added,
        removed=removed,
        changed=changed,
        cost=[_cost_line(t, bt.get(t), at.get(t)) for t in sorted(set(bt) | set(at))],
        total=_cost_line("total", btotal, atotal),
        policy=diff_policy(base_doc, head_doc),
    )


# -- rendering ------------------------------------------------------------------------------------


def usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


def signed_usd(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{'+' if value > 0 else '-' if value < 0 else '±'}${abs(value):,.2f}"


def _count_phrase(counts: dict[str, int]) -> str:
    return f"+{counts['added']} ~{counts['changed']} -{counts['removed']}"


def _stacks(d: PlanDiff) -> str:
    return d.head_stack if d.base_stack == d.head_stack else f"{d.base_stack} → {d.head_stack}"


def _policy_phrase(d: PlanDiff) -> str:
    p = d.policy
    if not p.head_known:
        return "policy verdict unknown (HEAD planned with --skip-policy)"
    blocking = len(p.blocking)
    if not p.base_known:
        return f"{blocking} mandatory violation(s), BASE verdict unknown" if blocking else "no mandatory violation"
    parts = [
        f"{blocking} new mandatory violation{'s' if blocking != 1 else ''}"
        if blocking
        else "no new mandatory violation"
    ]
    if p.fixed:
        parts.append(f"{len(p.fixed)} fixed")
    return ", ".join(parts)


def headline(d: PlanDiff) -> str:
    """`+3 ~2 -1 resources · cost $a→$b/month at max · 1 new mandatory violation`"""
    t = d.total
    cost = f"cost {usd(t.before_max)}→{usd(t.after_max)}/month at max"
    return f"{_count_phrase(d.counts())} resources · {cost} · {_policy_phrase(d)}"


def _violation_text(v: PolicyItem) -> str:
    level = f"{v.before}→{v.enforcement}" if v.before else v.enforcement
    return f"{level} {v.severity} {v.policy} {v.resource}: {' '.join(v.message.split())}"


def _policy_counts(c: tuple[int, int] | None) -> str:
    return "unknown" if c is None else f"{c[0]} mandatory, {c[1]} advisory"


def to_text(d: PlanDiff) -> str:
    lines = [f"inferstack diff: stack {_stacks(d)}", headline(d), ""]
    components = d.counts(custom=False)
    lines.append(
        f"resources: {d.base_resources} → {d.head_resources} ({_count_phrase(d.counts())}); "
        f"components: {d.base_components} → {d.head_components} ({_count_phrase(components)})"
    )
    for sign, group in (("+", d.added), ("-", d.removed), ("~", d.changed)):
        for r in group:
            kind = "" if r.custom else " (component)"
            lines.append(f"  {sign} {r.type}  {r.name}{kind}")
            lines += [f"      {c.path}: {c.before} → {c.after}" for c in r.inputs]
            lines += [f"      options.{c.path}: {c.before} → {c.after}" for c in r.options]
    lines += ["", "cost (USD per month)      at min: before → after (delta)      at max: before → after (delta)"]
    for c in [*d.cost, d.total]:
        lines.append(
            f"  {c.target}: {usd(c.before_min)} → {usd(c.after_min)} ({signed_usd(c.delta_min)})   "
            f"{usd(c.before_max)} → {usd(c.after_max)} ({signed_usd(c.delta_max)})"
        )
    t = d.total
    if t.before_rehearsed is not None or t.after_rehearsed is not None:
        lines.append(
            f"  traffic profile's month: {usd(t.before_rehearsed)} → {usd(t.after_rehearsed)} "
            f"({signed_usd(t.delta_rehearsed)})"
        )
    p = d.policy
    lines += ["", f"policy: BASE {_policy_counts(p.base_counts)}; HEAD {_policy_counts(p.head_counts)}"]
    if not p.base_known or not p.head_known:
        side = " and ".join(s for s, known in (("BASE", p.base_known), ("HEAD", p.head_known)) if not known)
        lines.append(f"  the verdict of {side} is unknown (planned with --skip-policy): nothing is compared to it")
    for label, items in (
        ("new", p.new),
        ("escalated", p.escalated),
        ("in HEAD", p.unverified),
        ("fixed", p.fixed),
        ("reworded", p.reworded),
    ):
        lines += [f"  {label}: {_violation_text(v)}" for v in items]
    if p.base_known and p.head_known:
        lines.append(f"  unchanged: {p.unchanged}")
    return "\n".join(lines) + "\n"


def to_json(d: PlanDiff) -> str:
    doc = {
        "base": {"stack": d.base_stack, "resources": d.base_resources, "components": d.base_components},
        "head": {"stack": d.head_stack, "resources": d.head_resources, "components": d.head_components},
        "headline": headline(d),
        "counts": {"resources": d.counts(), "components": d.counts(custom=False)},
        "added": [r.to_json() for r in d.added],
        "removed": [r.to_json() for r in d.removed],
        "changed": [r.to_json() for r in d.changed],
        "cost": {
            "targets": [c.to_json() for c in d.cost],
            "total": d.total.to_json(),
            "hoursPerMonth": HOURS_PER_MONTH,
        },
        "policy": d.policy.to_json(),
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


# Markdown and HTML punctuation a value could use to open a tag, emphasis, a link, math ($...$),
# or to end a table cell: escaped with a backslash, which CommonMark turns back into the character.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~$&#])")


def md_escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


def _code(text: str) -> str:
    """A value, path or name in a list or table, as code: escaped, so it can neither close the tag
    nor a table cell, nor format itself."""
    return f"<code>{md_escape(text)}</code>"


def _md_text(text: str, limit: int = MESSAGE_CHARS) -> str:
    return md_escape(clip(" ".join(text.split()), limit))


def _md_violation(v: PolicyItem) -> str:
    level = f"{v.before} → **{v.enforcement}**" if v.before else f"**{v.enforcement}**"
    return f"- {level} {v.severity} {_code(v.policy)} on {_code(v.resource)}: {_md_text(v.message)}"


def _md_resource_lines(r: ResourceDiff, changes: bool) -> list[str]:
    kind = " (component)" if not r.custom else ""
    out = [f"- {_code(r.type)} **{_md_text(r.name, 200)}**{kind}"]
    if changes:
        out += [f"  - {_code(c.path)}: {_code(c.before)} → {_code(c.after)}" for c in r.inputs]
        out += [f"  - option {_code(c.path)}: {_code(c.before)} → {_code(c.after)}" for c in r.options]
    return out


def _first(lines: list[str], limit: int) -> list[str]:
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"- … and {len(lines) - limit} more (`inferstack diff` lists them all)"]


def _details(summary: str, lines: list[str]) -> list[str]:
    return ["<details>", f"<summary>{summary}</summary>", "", *lines, "", "</details>", ""]


def _mu(value: float | None) -> str:
    return md_escape(usd(value))


def _ms(value: float | None) -> str:
    return md_escape(signed_usd(value))


def _markdown(d: PlanDiff, detail_lines: int, violation_lines: int) -> str:
    p, t = d.policy, d.total
    out = [
        STACK_MARKER.format(stack=d.head_stack),
        f"### inferstack diff `{_stacks(d)}`: {md_escape(headline(d))}",
        "",
        "| | BASE | HEAD | change |",
        "| --- | ---: | ---: | --- |",
        f"| resources | {d.base_resources} | {d.head_resources} | {md_escape(_count_phrase(d.counts()))} |",
        f"| components | {d.base_components} | {d.head_components} | "
        f"{md_escape(_count_phrase(d.counts(custom=False)))} |",
        f"| cost/month at min | {_mu(t.before_min)} | {_mu(t.after_min)} | {_ms(t.delta_min)} |",
        f"| cost/month at max | {_mu(t.before_max)} | {_mu(t.after_max)} | {_ms(t.delta_max)} |",
    ]
    if t.before_rehearsed is not None or t.after_rehearsed is not None:
        out.append(
            f"| traffic profile's month | {_mu(t.before_rehearsed)} | {_mu(t.after_rehearsed)} | "
            f"{_ms(t.delta_rehearsed)} |"
        )
    change = "unknown" if not (p.base_known and p.head_known) else f"{len(p.new)} new, {len(p.fixed)} fixed"
    if p.escalated:
        change += f", {len(p.escalated)} now mandatory"
    if p.reworded:
        change += f", {len(p.reworded)} reworded"
    out += [f"| policy | {_policy_counts(p.base_counts)} | {_policy_counts(p.head_counts)} | {change} |", ""]
    if not p.head_known:
        out += ["HEAD was planned with `--skip-policy`: its policy verdict is unknown.", ""]
    elif not p.base_known:
        out += ["BASE was planned with `--skip-policy`: no violation is called new or fixed against it.", ""]
    blocking = p.blocking
    if blocking:
        out += [f"**Mandatory violations this change brings ({len(blocking)}): they block the merge**", ""]
        out += _first([_md_violation(v) for v in blocking], violation_lines) + [""]
    advisory = [v for v in p.new + p.unverified if not v.mandatory]
    if advisory:
        out += [f"**New advisory violations ({len(advisory)})**", ""]
        out += _first([_md_violation(v) for v in advisory], violation_lines) + [""]

    budget = [detail_lines]
    cut = [0]

    def capped(lines: list[str]) -> list[str]:
        shown = lines[: max(budget[0], 0)]
        budget[0] -= len(shown)
        cut[0] += len(lines) - len(shown)
        if len(shown) < len(lines):
            shown.append(f"- … {len(lines) - len(shown)} more line(s) not shown")
        return shown

    for title, group, changes in (
        ("Added", d.added, False),
        ("Removed", d.removed, False),
        ("Changed", d.changed, True),
    ):
        if group:
            lines = [line for r in group for line in _md_resource_lines(r, changes)]
            out += _details(f"{title} ({_count_phrase_of(group)})", capped(lines))
    priced = [c for c in d.cost if c.changed]
    if priced:
        rows = ["| target | at min | at max | traffic profile's month |", "| --- | --- | --- | --- |"]
        rows += [
            f"| {_code(c.target)} | {_mu(c.before_min)} → {_mu(c.after_min)} | {_mu(c.before_max)} → "
            f"{_mu(c.after_max)} | {_mu(c.before_rehearsed)} → {_mu(c.after_rehearsed)} |"
            for c in priced
        ]
        out += _details(f"Cost per target ({len(priced)} changed)", rows)
    if p.fixed:
        out += _details(f"Fixed violations ({len(p.fixed)})", capped([_md_violation(v) for v in p.fixed]))
    if p.reworded:
        out += _details(
            f"Violations still there, reworded ({len(p.reworded)})", capped([_md_violation(v) for v in p.reworded])
        )
    if cut[0]:
        out += [f"_{cut[0]} detail line(s) cut to keep this comment short: `inferstack diff` shows them all._", ""]
    out.append("<sub>Costs: catalog prices, hourly × 730 at min and max capacity; an estimate.</sub>")
    return "\n".join(out) + "\n"


def _count_phrase_of(group: list[ResourceDiff]) -> str:
    resources = sum(r.custom for r in group)
    components = len(group) - resources
    return f"{resources} resource(s)" + (f", {components} component(s)" if components else "")


def to_markdown(d: PlanDiff, max_chars: int = MARKDOWN_CHARS) -> str:
    """A pull request comment: marker, headline, a table, blocking violations, details folded.
    Detail lines are cut (and counted) until it fits in `max_chars`."""
    lines, violations = DETAIL_LINES, VIOLATION_LINES
    text = _markdown(d, lines, violations)
    while len(text) > max_chars and (lines or violations > 1):
        lines, violations = lines // 2, max(violations // 2, 1)
        text = _markdown(d, lines, violations)
    return text
