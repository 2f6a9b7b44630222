"""The onprem-k8s spec through the CLI: the example validates, and what the issue says the spec
rejects exits 2 with the field and the fix, never a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import STACKS
from inferstack.cli import main

EXAMPLE = (STACKS / "onprem.yaml").read_text()


# The example's weights claim, and the site's store in its place.
S3_FROM = """      pvc: llama-3-8b-weights
      # The claim is on the site's CephFS: every node mounts it at once, read-only.
      pvc_access_mode: ReadOnlyMany
      path: meta-llama/Llama-3.1-8B-Instruct
"""
S3_CIDRS = "        endpoint_cidrs: [10.20.30.40/32]\n"
S3_TO = f"""      s3:
        endpoint: https://minio.muc.acme.internal
{S3_CIDRS}        bucket: models
        credentials_secret: minio-creds
        fetch_image: registry.muc.acme.internal/mirror/amazon/aws-cli@sha256:{"ab" * 32}
"""


def test_the_example_with_s3_weights_validates(tmp_path):
    result = _validate(tmp_path, EXAMPLE.replace(S3_FROM, S3_TO))
    assert result.exit_code == 0, result.output


def test_a_readwriteonce_claim_is_accepted_for_one_pool_of_one_node(tmp_path):
    one_node = EXAMPLE.replace("pvc_access_mode: ReadOnlyMany", "pvc_access_mode: ReadWriteOnce")
    start, end = one_node.index("      a100:\n"), one_node.index("    weights:\n")
    one_node = one_node[:start] + one_node[end:]
    one_node = one_node.replace("nodes: [muc-gpu-h100-01, muc-gpu-h100-02]", "nodes: [muc-gpu-h100-01]")
    one_node = one_node.replace("replicas: {min: 3, max: 16}", "replicas: {min: 3, max: 8}")
    result = _validate(tmp_path, one_node)
    assert result.exit_code == 0, result.output


def _validate(tmp_path, text: str):
    path = tmp_path / "onprem.yaml"
    path.write_text(text)
    return CliRunner().invoke(main, ["validate", str(path)])


def test_the_example_validates(tmp_path):
    result = _validate(tmp_path, EXAMPLE)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # A kubeconfig is a credential: never in the spec file.
        (
            "      context: muc-gpu-prod\n",
            "      context: muc-gpu-prod\n      kubeconfig: apiVersion v1\n",
            "cluster credentials never go in the spec file",
        ),
        # A location outside residency (the EU).
        ("    location: de\n", "    location: us\n", "outside residency"),
        # A MIG profile that does not exist for the A100 80GB.
        ("profile: 3g.40gb", "profile: 3g.20gb", "has no MIG profile '3g.20gb'"),
        # More replicas than the pool's devices hold (one node of 8 GPUs x 2 slices = 16).
        (
            "        replicas: {min: 2, max: 16}\n        tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]\n        node_cpus: 240",
            "        replicas: {min: 2, max: 17}\n        tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]\n        node_cpus: 240",
            "max",
        ),
        # A model that does not fit a 3g.40gb slice.
        ("    parameters: 8B", "    parameters: 70B", "a 3g.40gb MIG slice of A100-80GB offers"),
        # A tag in production.
        (
            "vllm-openai@sha256:0d4c8d8bd1b4dbbd4ec0a02c4ec7c2fa4f2e3db0e8ee7c1d9b3a1f0e5d6c7b8a",
            "vllm-openai:v0.9",
            "pin the image by digest",
        ),
        # An image from outside the site's mirror.
        ("image: registry.muc.acme.internal/mirror/", "image: docker.io/", "registry mirror"),
        # An operator-built driver with nowhere inside the site to get its OS packages from.
        ("      driver_repo_config: nvidia-driver-repos\n", "", "gpu_operator.driver"),
        ("      driver_repo_config: nvidia-driver-repos\n", "", "driver_precompiled: true"),
        # The repo ConfigMap is a Kubernetes name.
        ("driver_repo_config: nvidia-driver-repos", "driver_repo_config: Nvidia_Repos", "driver_repo_config"),
        # A precompiled image is chosen by branch, and needs no package mirror.
        (
            "      driver_repo_config: nvidia-driver-repos\n",
            "      driver_precompiled: true\n      driver_version: 570.172.08\n",
            "name the driver branch",
        ),
        (
            "      driver_repo_config: nvidia-driver-repos\n",
            "      driver_repo_config: nvidia-driver-repos\n      driver_precompiled: true\n      driver_version: '580'\n",
            "installs no OS packages",
        ),
        # A driver built on the nodes needs its full version, not a branch.
        (
            "      driver_repo_config: nvidia-driver-repos\n",
            "      driver_repo_config: r\n      driver_version: '580'\n",
            "is a driver branch",
        ),
        # A toleration of the site's taint is a Kubernetes toleration.
        (
            "        tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]\n        node_cpus: 240",
            "        tolerations: [{key: 'site gpu'}]\n        node_cpus: 240",
            "must be a taint key",
        ),
        (
            "        tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]\n        node_cpus: 240",
            "        tolerations: [{key: gpu, operator: Exists, value: x}]\n        node_cpus: 240",
            "operator: Exists matches any value",
        ),
        # The A100 node's 16 MIG slices hold 16 replicas, its 16 CPUs hold 8 (2 CPUs each).
        ("node_cpus: 240", "node_cpus: 16", "pools.a100.node_cpus"),
        # The nodes' own driver takes no driver source.
        ("      driver: operator\n", "      driver: preinstalled\n", "driver: preinstalled"),
        # No labels for the site's Prometheus to select the ServiceMonitors by.
        ("    monitoring:\n", "    unmonitored:\n", "targets.muc.monitoring"),
        ("service_monitor_labels: {release: kube-prometheus-stack}", "service_monitor_labels: {}", "at least 1"),
        (
            "service_monitor_labels: {release: kube-prometheus-stack}",
            "service_monitor_labels: {'not a key': x}",
            "is not a Kubernetes label key",
        ),
        (
            "service_monitor_labels: {release: kube-prometheus-stack}",
            "service_monitor_labels: {release: -stack}",
            "is not a Kubernetes label value",
        ),
        # A weights claim whose access mode is unstated, or one node's only.
        ("      pvc_access_mode: ReadOnlyMany\n", "", "targets.muc.weights.pvc_access_mode"),
        ("pvc_access_mode: ReadOnlyMany", "pvc_access_mode: ReadWriteOnce", "mounts on one node only"),
        ("pvc_access_mode: ReadOnlyMany", "pvc_access_mode: ReadWriteOncePod", "admits one pod in the whole cluster"),
        ("pvc_access_mode: ReadOnlyMany", "pvc_access_mode: ReadWriteSome", "pvc_access_mode"),
        # s3 weights without the store's networks, or with the internet as one.
        (S3_FROM, S3_TO.replace(S3_CIDRS, ""), "targets.muc.weights.s3.endpoint_cidrs"),
        (S3_FROM, S3_TO.replace("10.20.30.40/32", "0.0.0.0/0"), "wider than a /8"),
        (S3_FROM, S3_TO.replace("10.20.30.40/32", "10.20.30.40/24"), "is not an IPv4 network"),
    ],
)
def test_the_spec_rejects(tmp_path, old, new, expected):
    assert old in EXAMPLE
    result = _validate(tmp_path, EXAMPLE.replace(old, new, 1))
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
