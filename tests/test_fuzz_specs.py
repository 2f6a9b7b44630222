"""A few hundred seeded mutations of the example specs: every one is either accepted or refused
with a message (exit 0 or 2), never a traceback. Deterministic, so a failure names its case."""

from __future__ import annotations

import io
import random
import re
import signal
from contextlib import contextmanager
from typing import Any

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from conftest import EXAMPLE_STACKS, stack_text
from inferstack.cli import main

SEED = 8
CASES_PER_STACK = 90

ODD_STRINGS = [
    "",
    " ",
    "x" * 5000,
    "\u202eevil",
    "zero\u200bwidth",
    "ｆｕｌｌｗｉｄｔｈ",
    "１２",
    "🦙" * 10,
    "e\u0301\u0301\u0301",
    "${HOME}",
    "$(reboot)",
    "'; DROP TABLE",
    "\\",
    "\t",
    "line\nbreak",
    "nul\x00byte",
    "\x1b[31mred",
    "[red]markup[/]",
    "~",
    "null",
    "yes",
    "0x10",
    "1e400",
    "-0",
    ".nan",
    "8B" * 100,
]
ODD_SCALARS: list[Any] = [None, True, False, 0, -1, 2**31, 10**30, -(10**30), 1.5, float("inf"), float("nan"), 1e-300]


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def _get(node: Any, path: tuple) -> Any:
    for part in path:
        node = node[part]
    return node


def _odd_value(rng: random.Random) -> Any:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice(ODD_STRINGS)
    if kind == 1:
        return rng.choice(ODD_SCALARS)
    if kind == 2:
        return [] if rng.random() < 0.5 else {}
    if kind == 3:  # nesting around the depth bound, on both sides of it
        value: Any = "x"
        for _ in range(rng.choice([5, 40, 62, 70, 200])):
            value = [value] if rng.random() < 0.5 else {"k": value}
        return value
    if kind == 4:
        return {rng.choice(ODD_STRINGS) or "k": rng.choice(ODD_SCALARS)}
    return rng.choice([10 ** rng.randrange(1, 40), -(10 ** rng.randrange(1, 40)), rng.uniform(-1e300, 1e300)])


def _mutate_tree(tree: Any, rng: random.Random) -> Any:
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(tree) if p]
        path = rng.choice(paths)
        parent, last = _get(tree, path[:-1]), path[-1]
        action = rng.randrange(4)
        if action == 0:  # drop the field or item
            del parent[last]
        elif action == 1 and isinstance(last, str):  # a typo in the name
            i = rng.randrange(len(last) + 1)
            parent[last[:i] + rng.choice("_-xZé ") + last[i + 1 :]] = parent.pop(last)
        elif action == 2 and isinstance(parent[last], (dict, list)) and parent[last]:
            parent[last] = rng.choice([[parent[last]], "scalar", 7])  # a mapping where a list goes, ...
        else:
            parent[last] = _odd_value(rng)
    return tree


def _mutate_text(text: str, rng: random.Random) -> str:
    i = rng.randrange(len(text))
    choice = rng.randrange(7)
    if choice == 6:  # flow brackets far past the depth bound (the dumper cannot write these)
        depth = rng.choice([100, 3000])
        return re.sub(r"(?<=: )\S+$", "[" * depth + "]" * depth, text, count=1, flags=re.MULTILINE)
    if choice == 4:  # a number past Python's 4300-digit limit for int()
        return re.sub(
            r"(?<=: )\d+$", "9" * rng.choice([50, 5000]), text, count=1 + rng.randrange(3), flags=re.MULTILINE
        )
    if choice == 5:  # an alias bomb beside the real fields
        bomb = "x0: &x0 [a, a, a, a, a, a, a, a, a]\n" + "".join(
            f"x{k}: &x{k} [{', '.join([f'*x{k - 1}'] * 9)}]\n" for k in range(1, rng.choice([3, 9]))
        )
        return text + bomb
    if choice == 0:
        return text[:i]  # cut short
    if choice == 1:
        return (
            text[:i]
            + rng.choice(["\t", ":", "- ", "&a ", "*a", "? ", "{", "[", "!!python/object:os.system ", "%"])
            + text[i:]
        )
    if choice == 2:
        lines = text.splitlines(keepends=True)
        a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[a], lines[b] = lines[b], lines[a]
        return "".join(lines)
    return text.replace("  ", " ", 1 + rng.randrange(3))


def _dump(tree: Any) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.width = 4096
    out = io.StringIO()
    yaml.dump(tree, out)
    return out.getvalue()


def _cases() -> list[tuple[str, int, str]]:
    rng = random.Random(SEED)
    cases = []
    for stack in EXAMPLE_STACKS:
        text = stack_text(stack.name)
        for n in range(CASES_PER_STACK):
            if n % 3 == 2:
                cases.append((stack.stem, n, _mutate_text(text, rng)))
            else:
                cases.append((stack.stem, n, _dump(_mutate_tree(YAML(typ="safe").load(text), rng))))
    return cases


class _Stalled(Exception):
    pass


@contextmanager
def _deadline(seconds: float):
    """Fail one case that stalls (an alias bomb's expansion, say) instead of hanging the run."""

    def stalled(*_: object) -> None:
        raise _Stalled(f"no answer in {seconds} s")

    previous = signal.signal(signal.SIGALRM, stalled)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_every_mutation_exits_0_or_2_with_a_message(tmp_path):
    runner = CliRunner()
    outcomes = {0: 0, 2: 0}
    for stack, n, text in _cases():
        path = tmp_path / f"{stack}.yaml"
        path.write_text(text, encoding="utf-8")
        for command in ("validate", "policy-config"):
            with _deadline(5):
                result = runner.invoke(main, [command, str(path)])
            case = f"{stack} mutation {n} ({command}):\n{text[:3000]}\n---\n{result.output[-3000:]}"
            assert result.exception is None or isinstance(result.exception, SystemExit), (case, result.exc_info)
            assert result.exit_code in (0, 2), case
            assert "Traceback" not in result.output, case
            if result.exit_code == 2:
                assert "error" in result.output and len(result.output) < 20_000, case
            outcomes[result.exit_code] += 1
    # The mutations must reach past the parser: some specs still pass, most are refused.
    assert outcomes[0] > 20 and outcomes[2] > 200, outcomes


@pytest.mark.parametrize("stack", EXAMPLE_STACKS, ids=lambda p: p.stem)
def test_mutations_that_validate_also_plan(tmp_path, stack):
    """Planning is slower, so only the first few accepted mutations of each stack are planned."""
    runner = CliRunner()
    planned = 0
    for name, n, text in _cases():
        if name != stack.stem or planned >= 2:
            continue
        path = tmp_path / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        if runner.invoke(main, ["validate", str(path)]).exit_code != 0:
            continue
        result = runner.invoke(main, ["plan", str(path)])
        assert result.exception is None or isinstance(result.exception, SystemExit), (n, text, result.exc_info)
        assert result.exit_code in (0, 1, 2), (n, text, result.output[-3000:])  # 1: the pack blocked it
        planned += 1
