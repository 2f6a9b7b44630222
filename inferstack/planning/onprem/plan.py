"""The plan of one `onprem-k8s` target: its pools, node configuration and serving workload,
joined into the `OnPremPlan` its component applies or renders."""

from __future__ import annotations

from inferstack.planning.naming import k8s_labels, standard_tags
from inferstack.planning.onprem import OnPremPlan
from inferstack.planning.onprem.nodes import plan_node_config
from inferstack.planning.onprem.pools import plan_pools
from inferstack.planning.onprem.workload import LOCATION_LABEL, namespace_of, plan_workload
from inferstack.spec.models import DeploymentSpec, OnPremK8sTarget

# The GPU operator's namespace runs the node agents, not the engine: the policy pack tells the two
# apart by this `workload` label (restricted Pod Security where the engine runs, an explicit
# privileged opt-out here).
SYSTEM_WORKLOAD = "system"


def plan_onprem(spec: DeploymentSpec, stack: str, name: str) -> OnPremPlan:
    target = spec.targets[name]
    assert isinstance(target, OnPremK8sTarget)
    model_name, _ = spec.model_of(name)
    pools = plan_pools(spec, name)
    # The operator's namespace is on the site too: it carries the location the pack's residency reads.
    system_labels = {
        **k8s_labels(standard_tags(spec, stack, model_name, SYSTEM_WORKLOAD)),
        LOCATION_LABEL: target.location,
    }
    nodes = plan_node_config(spec, name, system_labels)
    gateway: tuple = ()
    if spec.overflow is not None and spec.overflow.primary == name:
        # The overflow gateway runs on the primary's cluster, beside its engines.
        from inferstack.planning.overflow.gateway import plan_gateway
        from inferstack.planning.overflow.plan import plan_upstreams
        from inferstack.planning.overflow.ranges import gateway_egress_ranges

        gateway = plan_gateway(spec, stack, plan_upstreams(spec, stack), gateway_egress_ranges(spec)).manifests
    return OnPremPlan(
        target=name,
        location=target.location,
        namespace=namespace_of(spec, stack, name),
        mode=target.mode,
        render_dir=target.render_dir,
        kubeconfig_config_key=target.cluster.kubeconfig_config_key,
        context=target.cluster.context,
        kubernetes_version=target.cluster.version,
        labels=k8s_labels(standard_tags(spec, stack, model_name, target.workload)),
        pools=pools,
        node_patches=nodes.node_patches,
        gpu_operator=nodes.gpu_operator,
        # The operator's namespace and config first: the engine's pods need its runtime class.
        manifests=(*nodes.manifests, *plan_workload(spec, stack, name, pools), *gateway),
    )
