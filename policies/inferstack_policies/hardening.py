"""Node hardening: every secure default the components set on GCP instance templates, TPU VMs
(and the queued-resource body's node) and AWS launch templates is also a rule, so a program
that turns one off (Secure Boot, OS Login, the default compute service account...) is blocked.

Each rule declares the input paths it checks (`checks=`); tests/policies/test_hardening_in_step.py
compares them with the hardening fields the components set in every example plan.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import ResourceValidationArgs, Severity
from pulumi_policy.proxy import UnknownValueError

from ._rules import (
    DYNAMIC,
    GCP_TEMPLATES,
    LAUNCH_TEMPLATE,
    QUEUED_TPU,
    TPU_VM,
    get,
    queued_tpu_nodes,
    resource_rule,
    truthy,
)

EC2_INSTANCE = "aws:ec2/instance:Instance"
GCP_NODES = (*GCP_TEMPLATES, TPU_VM, DYNAMIC)


def _nodes(args: ResourceValidationArgs) -> Iterator[tuple[str, Any]]:
    """(kind, properties) of every GCP VM the resource describes: itself, or the queued body's nodes."""
    t = args.resource_type
    if t in GCP_TEMPLATES or t == TPU_VM:
        kind = {TPU_VM: "TPU VM", "gcp:compute/instance:Instance": "instance"}.get(t, "instance template")
        yield kind, args.props
    for node in queued_tpu_nodes(t, args.props):
        yield "queued TPU node", node


def _metadata(node: Any, key: str) -> Any:
    # Instance metadata is a map on every GCP VM resource (and the TPU API body).
    return get(node, "metadata", key)


def _on(value: Any) -> bool:
    """GCP metadata booleans: TRUE/true/1 (Compute Engine's OS Login and serial-port docs)."""
    return truthy(value) or str(value).strip() == "1"


@resource_rule(
    "security-gcp-compute-require-shielded-vm",
    "GCP VMs boot with Shielded VM: Secure Boot, vTPM and integrity monitoring on instance templates; "
    "Secure Boot on TPU VMs (the only Shielded VM setting the TPU API has).",
    severity=Severity.HIGH,
    remediation="set shieldedInstanceConfig.enableSecureBoot, enableVtpm and enableIntegrityMonitoring to true.",
    types=GCP_NODES,
    checks={
        **{
            t: (
                "shieldedInstanceConfig.enableSecureBoot",
                "shieldedInstanceConfig.enableVtpm",
                "shieldedInstanceConfig.enableIntegrityMonitoring",
            )
            for t in GCP_TEMPLATES
        },
        TPU_VM: ("shieldedInstanceConfig.enableSecureBoot",),
        QUEUED_TPU: ("shieldedInstanceConfig.enableSecureBoot",),
    },
)
def shielded_vm(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    for kind, node in _nodes(args):
        fields = ["enableSecureBoot"]
        if kind != "TPU VM" and kind != "queued TPU node":
            # vTPM and integrity monitoring default to true on Compute Engine, Secure Boot to
            # false; all three are required explicitly so the plan shows them.
            fields += ["enableVtpm", "enableIntegrityMonitoring"]
        for field in fields:
            if not truthy(get(node, "shieldedInstanceConfig", field)):
                yield f"The {kind} does not set shieldedInstanceConfig.{field} to true."


@resource_rule(
    "security-gcp-compute-require-os-login",
    "GCP VMs use OS Login (metadata enable-oslogin=TRUE): SSH access is IAM-granted and audited, not key-based.",
    severity=Severity.HIGH,
    remediation="set the metadata key enable-oslogin to TRUE.",
    types=GCP_NODES,
    checks={t: ("metadata.enable-oslogin",) for t in (*GCP_TEMPLATES, TPU_VM, QUEUED_TPU)},
)
def os_login(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    for kind, node in _nodes(args):
        if not _on(_metadata(node, "enable-oslogin")):
            yield f"The {kind} does not enable OS Login (enable-oslogin={_metadata(node, 'enable-oslogin')!r})."


@resource_rule(
    "security-gcp-compute-block-project-ssh-keys",
    "GCP VMs block project-wide SSH keys (metadata block-project-ssh-keys=TRUE): a key added to the "
    "project must not open every serving node.",
    severity=Severity.HIGH,
    remediation="set the metadata key block-project-ssh-keys to TRUE.",
    types=GCP_NODES,
    checks={t: ("metadata.block-project-ssh-keys",) for t in (*GCP_TEMPLATES, TPU_VM, QUEUED_TPU)},
)
def block_project_keys(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    for kind, node in _nodes(args):
        if not _on(_metadata(node, "block-project-ssh-keys")):
            yield f"The {kind} allows project-wide SSH keys."


@resource_rule(
    "security-gcp-compute-disallow-serial-port",
    "GCP VMs keep the interactive serial console off (metadata serial-port-enable not TRUE; off is "
    "Compute Engine's default, so an absent key passes).",
    severity=Severity.MEDIUM,
    remediation="set the metadata key serial-port-enable to FALSE (or leave it out).",
    types=GCP_NODES,
    checks={t: ("metadata.serial-port-enable",) for t in (*GCP_TEMPLATES, TPU_VM, QUEUED_TPU)},
)
def no_serial_port(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    for kind, node in _nodes(args):
        if _on(_metadata(node, "serial-port-enable")):
            yield f"The {kind} enables the interactive serial port."


@resource_rule(
    "security-gcp-compute-disallow-ip-forwarding",
    "GCP VMs do not forward IP packets: a serving node is not a router.",
    severity=Severity.MEDIUM,
    remediation="set canIpForward (networkConfig.canIpForward on TPU VMs) to false.",
    types=GCP_NODES,
    checks={
        **{t: ("canIpForward",) for t in GCP_TEMPLATES},
        TPU_VM: ("networkConfig.canIpForward",),
        QUEUED_TPU: ("networkConfig.canIpForward",),
    },
)
def no_ip_forward(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    for kind, node in _nodes(args):
        value = get(node, "networkConfig", "canIpForward") if "TPU" in kind else get(node, "canIpForward")
        if truthy(value):
            yield f"The {kind} forwards IP packets."


DEFAULT_COMPUTE_SA = "-compute@developer.gserviceaccount.com"


@resource_rule(
    "security-gcp-compute-require-dedicated-service-account",
    "GCP VMs run as a dedicated service account: never the project's default compute account "
    "(PROJECT_NUMBER-compute@developer.gserviceaccount.com, often granted Editor), and never without "
    "one named (the API then picks the default).",
    severity=Severity.HIGH,
    remediation="create a service account for the fleet with only the roles it needs and set serviceAccount.email.",
    types=GCP_NODES,
    checks={t: ("serviceAccount.email",) for t in (*GCP_TEMPLATES, TPU_VM, QUEUED_TPU)},
)
def dedicated_sa(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    for kind, node in _nodes(args):
        try:
            email = get(node, "serviceAccount", "email")
        except UnknownValueError:
            # Unknown at preview means the program creates the account in this update; the
            # default account's email is a known string (a lookup resolves during preview).
            continue
        if not email or str(email) == "default":
            yield f"The {kind} names no service account, so it runs as the default compute account."
        elif str(email).endswith(DEFAULT_COMPUTE_SA):
            yield f"The {kind} runs as the default compute service account {email}."


@resource_rule(
    "security-aws-ec2-disallow-key-pair",
    "EC2 launch templates and instances name no SSH key pair: nodes are reached through SSM Session "
    "Manager, which is IAM-granted and logged.",
    severity=Severity.MEDIUM,
    remediation="remove keyName; use SSM Session Manager for shell access.",
    types=(LAUNCH_TEMPLATE, EC2_INSTANCE),
    checks={LAUNCH_TEMPLATE: ("keyName",), EC2_INSTANCE: ("keyName",)},
)
def no_key_pair(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if get(args.props, "keyName"):
        yield f"The template names the key pair {get(args.props, 'keyName')!r}."
