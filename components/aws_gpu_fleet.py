"""AwsGpuFleet: an EC2 Auto Scaling group of GPU instances serving one model, secure by default.

It takes an `AwsFleetPlan` (every decision already made by `inferstack.planning.aws_fleet`)
and an explicit provider, and creates: a customer-managed KMS key, the private network (or a
lookup of an existing one), the nodes' IAM role, a security group, the launch template, the
Auto Scaling group and its scaling policies.

Scaling works in three parts, on what the nodes publish (`InferStack/<metric>` with the group's
name as dimension) once their engine is healthy:
- a target-tracking policy scales out on the spec's signal (its own scale-in is disabled);
- a simple-scaling policy removes one instance when in-flight load (running + waiting requests
  per node) stays low for the spec's scale-in cooldown, at most once per cooldown, down to `min`;
  waiting requests alone are 0 whenever the batch has room, so they never decide a scale-in;
- with `min: 0`, a wake-up alarm sets capacity to 1 when the group's *desired* capacity is 0 and
  there is demand: connections the private endpoint's NLB could not route (AWS/NetworkELB), or
  pending requests a front door publishes for the group.

Lifecycle: a launch hook holds every new node (and every node entering or leaving the warm pool)
until the node itself reports its engine healthy; a termination hook holds a leaving node until
its agent has drained the requests in flight. Both are completed from the node (see the user data).
"""

from __future__ import annotations

import base64

import pulumi
import pulumi_aws as aws

from inferstack.components.aws_endpoint import AwsPrivateEndpoint
from inferstack.components.aws_network import AwsPrivateNetwork
from inferstack.planning import iam
from inferstack.planning.aws_fleet import (
    DEMAND_METRIC,
    DRAIN_HOOK,
    INSTANCE_REFRESH_MAX_HEALTHY,
    INSTANCE_REFRESH_MIN_HEALTHY,
    KMS_DELETION_WINDOW_DAYS,
    LAUNCH_HOOK,
    METRICS_NAMESPACE,
    NLB_DEMAND_METRICS,
    AwsFleetPlan,
)

GROUP_METRICS = [
    aws.autoscaling.Metric.GROUP_IN_SERVICE_INSTANCES,
    aws.autoscaling.Metric.GROUP_DESIRED_CAPACITY,
    aws.autoscaling.Metric.GROUP_PENDING_INSTANCES,
    aws.autoscaling.Metric.GROUP_TOTAL_INSTANCES,
]


def autoscaling_service_role(tags: dict[str, str], opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
    """Adopt the account's Auto Scaling service-linked role, or create it when the account never
    had an Auto Scaling group (AWS makes it with the first group, which is after our key).

    Called once per stack: the role is one per account. A role created moments before the key
    may not be visible to KMS yet; the provider retries CreateKey on MalformedPolicyDocument for
    that propagation (as the KMS API reference advises for new principals). `get_roles` answers an empty list where
    `get_role` would fail. A role this stack created is retained on delete: the next run finds
    it and stops declaring it, and it must not be deleted then (nor while any group uses it).
    """
    found = aws.iam.get_roles(
        path_prefix=iam.AUTOSCALING_ROLE_PATH,
        name_regex=f"^{iam.AUTOSCALING_ROLE_NAME}$",
        opts=pulumi.InvokeOptions(provider=opts.provider),
    )
    if found.names:
        return []
    role = aws.iam.ServiceLinkedRole(
        "autoscaling-service-role",
        aws_service_name=iam.AUTOSCALING_SERVICE,
        tags=tags,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(retain_on_delete=True)),
    )
    return [role]


class AwsGpuFleet(pulumi.ComponentResource):
    asg_name: pulumi.Output[str]
    launch_template_id: pulumi.Output[str]
    image_id: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]
    vpc_id: pulumi.Output[str]
    subnet_ids: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        plan: AwsFleetPlan,
        opts: pulumi.ResourceOptions | None = None,
        *,
        key_depends_on: list[pulumi.Resource] | None = None,
    ):
        """`key_depends_on`: the Auto Scaling service-linked role when this stack creates it
        (see `autoscaling_service_role`): the key policy names it, and KMS refuses a policy whose
        principal does not exist."""
        super().__init__("inferstack:fleet:AwsGpuFleet", name, None, opts)
        self.plan = plan
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        tags = plan.tags
        identity = aws.get_caller_identity_output(opts=invoke)
        partition = aws.get_partition_output(opts=invoke).partition

        key = aws.kms.Key(
            f"{name}-key",
            description=f"inferstack {plan.prefix}: root volumes and logs",
            enable_key_rotation=True,
            deletion_window_in_days=KMS_DELETION_WINDOW_DAYS,
            policy=pulumi.Output.all(partition, identity.account_id).apply(
                lambda a: iam.kms_key_policy(a[0], a[1], plan.region, log_delivery=plan.endpoint is not None)
            ),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=True, depends_on=key_depends_on or []),
        )
        aws.kms.Alias(f"{name}-key", name=f"alias/inferstack/{plan.prefix}", target_key_id=key.key_id, opts=child)

        network = AwsPrivateNetwork(
            f"{name}-net", plan.network, plan.region, tags, key.arn, plan.log_retention_days, opts=child
        )

        logs = aws.cloudwatch.LogGroup(
            f"{name}-engine-logs",
            name=plan.log_group_name,
            retention_in_days=plan.log_retention_days,
            kms_key_id=key.arn,
            tags=tags,
            opts=child,
        )
        metric_logs = aws.cloudwatch.LogGroup(
            f"{name}-metric-logs",
            name=plan.metrics_log_group_name,
            retention_in_days=plan.metrics_log_retention_days,
            kms_key_id=key.arn,
            tags=tags,
            opts=child,
        )
        role, profile = self._node_identity(
            name, plan, partition, identity.account_id, logs.arn, metric_logs.arn, child
        )
        endpoint = None
        if plan.endpoint is not None:
            endpoint = AwsPrivateEndpoint(
                f"{name}-endpoint",
                plan.endpoint,
                vpc_id=network.vpc_id,
                vpc_cidr=network.vpc_cidr,
                subnet_ids=network.subnet_ids,
                zone_ids=network.zone_ids,
                kms_key_arn=key.arn,
                tags=tags,
                deregistration_delay=plan.readiness.drain_seconds,
                opts=child,
            )
        sg = self._security_group(name, plan, network, endpoint, child)
        template = self._launch_template(name, plan, key, sg, profile, invoke, child)
        group = self._group(name, plan, template, network, endpoint)
        self._scaling(name, plan, group, endpoint, child)
        self.alert_topic_arn = self._slo_alarms(name, plan, key, child)
        self.endpoint = endpoint
        self.network = network

        self.asg_name = group.name
        self.launch_template_id = template.id
        self.image_id = template.image_id
        self.security_group_id = sg.id
        self.role_arn = role.arn
        self.kms_key_arn = key.arn
        self.vpc_id = network.vpc_id
        self.subnet_ids = network.subnet_ids
        self.register_outputs(
            {
                "asg_name": self.asg_name,
                "launch_template_id": self.launch_template_id,
                "image_id": self.image_id,
                "security_group_id": self.security_group_id,
                "role_arn": self.role_arn,
                "kms_key_arn": self.kms_key_arn,
                "vpc_id": self.vpc_id,
                "subnet_ids": self.subnet_ids,
                "alert_topic_arn": self.alert_topic_arn,
            }
        )

    # -- identity ---------------------------------------------------------------------------

    def _node_identity(self, name, plan: AwsFleetPlan, partition, account, log_group_arn, metrics_log_arn, child):
        role = aws.iam.Role(
            f"{name}-node",
            description=f"inferstack {plan.prefix}: serving nodes",
            assume_role_policy=iam.assume_role("ec2.amazonaws.com"),
            tags=plan.tags,
            opts=child,
        )

        def policy(args) -> str:
            part, acct, log_arn, metrics_arn = args
            group_arn = (
                f"arn:{part}:autoscaling:{plan.region}:{acct}:autoScalingGroup:*:autoScalingGroupName/{plan.asg_name}"
            )
            repo = None
            if plan.ecr is not None:
                repo = f"arn:{part}:ecr:{plan.ecr.region}:{plan.ecr.account}:repository/{plan.ecr.repository}"
            return iam.node_policy(
                partition=part,
                bucket=plan.weights_bucket,
                prefix=plan.weights_prefix,
                ecr_repository_arn=repo,
                log_group_arn=log_arn,
                metrics_log_group_arn=metrics_arn,
                metrics_namespace=METRICS_NAMESPACE,
                weights_kms_key_arn=plan.weights_kms_key_arn,
                region=plan.region,
                group_arn=group_arn,
            )

        aws.iam.RolePolicy(
            f"{name}-node",
            role=role.id,
            policy=pulumi.Output.all(partition, account, log_group_arn, metrics_log_arn).apply(policy),
            opts=child,
        )
        # Session Manager instead of SSH (no key pair, no port 22): its few actions are in the
        # node policy, not the managed AmazonSSMManagedInstanceCore (every parameter readable).
        profile = aws.iam.InstanceProfile(f"{name}-node", role=role.name, tags=plan.tags, opts=child)
        return role, profile

    # -- network access ---------------------------------------------------------------------

    def _security_group(self, name, plan: AwsFleetPlan, network: AwsPrivateNetwork, endpoint, child):
        sg = aws.ec2.SecurityGroup(
            f"{name}-nodes",
            vpc_id=network.vpc_id,
            description=f"inferstack {plan.prefix}: serving nodes",
            tags=plan.tags,
            opts=child,
        )
        # With a private endpoint, only its load balancer reaches the serving port.
        source = (
            {
                "referenced_security_group_id": endpoint.security_group_id,
                "description": f"Serving port {plan.port} from the private endpoint load balancer only",
            }
            if endpoint is not None
            else {"cidr_ipv4": network.vpc_cidr, "description": f"Serving port {plan.port} from inside the VPC"}
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-serving",
            security_group_id=sg.id,
            ip_protocol="tcp",
            from_port=plan.port,
            to_port=plan.port,
            tags=plan.tags,
            opts=child,
            **source,
        )

        def https_egress(suffix: str, description: str, **destination) -> None:
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-egress-{suffix}",
                security_group_id=sg.id,
                description=description,
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                tags=plan.tags,
                opts=child,
                **destination,
            )

        if plan.network.creates_vpc:
            # Everything the nodes talk to is a VPC endpoint: interface endpoints in the VPC's
            # CIDR, S3 through the gateway endpoint's prefix list.
            https_egress(
                "endpoints",
                "HTTPS to the VPC interface endpoints (ECR, STS, CloudWatch, SSM)",
                cidr_ipv4=network.vpc_cidr,
            )
            https_egress(
                "s3",
                "HTTPS to S3 through the gateway endpoint (weights, image layers)",
                prefix_list_id=network.s3_prefix_list_id,
            )
        else:
            # An existing VPC's endpoints and egress path are its owner's; HTTPS is all we need.
            https_egress(
                "https",
                "HTTPS to AWS APIs and the weights bucket through the existing VPC routes",
                cidr_ipv4="0.0.0.0/0",
            )
        return sg

    # -- instances --------------------------------------------------------------------------

    def _launch_template(self, name, plan: AwsFleetPlan, key, sg, profile, invoke, child):
        # The AMI is pinned: the spec's ami_id, or else the SSM parameter's value when the template
        # was created, kept by ignore_changes, so a new AMI behind the parameter rolls nothing. Moving
        # to another AMI is setting ami_id (a reviewed change; the instance refresh rolls the group).
        if plan.ami_id is not None:
            image_id: pulumi.Input[str] = plan.ami_id
            pin = child
        else:
            image_id = aws.ssm.get_parameter_output(name=plan.ami_ssm_parameter, opts=invoke).value
            pin = pulumi.ResourceOptions(parent=self, ignore_changes=["imageId"])
        tag_specs = [
            aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=plan.tags)
            for kind in ("instance", "volume", "network-interface")
        ]
        return aws.ec2.LaunchTemplate(
            f"{name}-lt",
            description=f"inferstack {plan.prefix}: GPU serving node",
            image_id=image_id,
            # A mixed instances policy names the types; a warm-pool group takes it from here.
            instance_type=None if plan.uses_mixed_instances else plan.instance_types[0],
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile.arn),
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,
                instance_metadata_tags="enabled",
            ),
            network_interfaces=[
                aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                    device_index=0,
                    associate_public_ip_address="true" if plan.public_ip else "false",
                    delete_on_termination="true",
                    security_groups=[sg.id],
                )
            ],
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name="/dev/xvda",
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=plan.root_volume.size_gib,
                        volume_type="gp3",
                        # The weights are written and read back through this volume at boot;
                        # gp3's 125 MiB/s baseline would make that the slowest step.
                        throughput=plan.root_volume.throughput_mib,
                        iops=plan.root_volume.iops,
                        encrypted="true",
                        kms_key_id=key.arn,
                        delete_on_termination="true",
                    ),
                )
            ],
            ebs_optimized="true",
            monitoring=aws.ec2.LaunchTemplateMonitoringArgs(enabled=True),
            user_data=base64.b64encode(plan.user_data.encode()).decode(),
            tag_specifications=tag_specs,
            update_default_version=True,
            tags=plan.tags,
            opts=pin,
        )

    def _group(self, name, plan: AwsFleetPlan, template, network: AwsPrivateNetwork, endpoint):
        # The version, not "$Latest": a new template version is a change the group sees, and
        # that starts the rolling instance refresh.
        version = template.latest_version.apply(str)
        mixed = launch_template = warm_pool = None
        if plan.uses_mixed_instances:
            mixed = aws.autoscaling.GroupMixedInstancesPolicyArgs(
                instances_distribution=aws.autoscaling.GroupMixedInstancesPolicyInstancesDistributionArgs(
                    on_demand_base_capacity=plan.on_demand_base,
                    on_demand_percentage_above_base_capacity=plan.on_demand_percentage,
                    spot_allocation_strategy=plan.spot_allocation_strategy,
                ),
                launch_template=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateArgs(
                    launch_template_specification=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecificationArgs(
                        launch_template_id=template.id, version=version
                    ),
                    overrides=[
                        aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateOverrideArgs(instance_type=t)
                        for t in plan.instance_types
                    ],
                ),
            )
        else:
            launch_template = aws.autoscaling.GroupLaunchTemplateArgs(id=template.id, version=version)
            warm_pool = aws.autoscaling.GroupWarmPoolArgs(
                pool_state="Stopped",
                min_size=plan.warm_pool_size,
                max_group_prepared_capacity=plan.warm_pool_size,
                instance_reuse_policy=aws.autoscaling.GroupWarmPoolInstanceReusePolicyArgs(reuse_on_scale_in=True),
            )
        group = aws.autoscaling.Group(
            f"{name}-asg",
            name=plan.asg_name,
            min_size=plan.min_size,
            max_size=plan.max_size,
            desired_capacity=plan.desired_capacity,
            vpc_zone_identifiers=network.subnet_ids,
            mixed_instances_policy=mixed,
            launch_template=launch_template,
            warm_pool=warm_pool,
            capacity_rebalance=plan.spot_enabled,
            # Behind the endpoint, the load balancer's health check (the engine's) decides.
            health_check_type="ELB" if endpoint is not None else "EC2",
            target_group_arns=[endpoint.target_group_arn] if endpoint is not None else None,
            # The launch hook holds a node until its engine is healthy, so the grace after it is short
            # (AWS: "If you use lifecycle hooks for instance launch, you can set the health check
            # grace period to 0"); the hook's timeout carries the real readiness.
            health_check_grace_period=plan.readiness.grace_seconds,
            default_instance_warmup=plan.readiness.grace_seconds,
            initial_lifecycle_hooks=[
                aws.autoscaling.GroupInitialLifecycleHookArgs(**hook) for hook in self._hooks(plan)
            ],
            instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                    # Launch before terminating: full capacity stays in service while new nodes boot.
                    min_healthy_percentage=INSTANCE_REFRESH_MIN_HEALTHY,
                    max_healthy_percentage=INSTANCE_REFRESH_MAX_HEALTHY,
                    # Back to the previous template if the new nodes never pass (the template names
                    # a real AMI id and the group a version number, the two cases rollback needs).
                    auto_rollback=True,
                    # Nodes already on the new template version are not replaced again.
                    skip_matching=True,
                ),
            ),
            enabled_metrics=GROUP_METRICS,
            metrics_granularity="1Minute",
            # A GPU node that is still loading a model must not block `pulumi up` for minutes.
            wait_for_capacity_timeout="0",
            tags=[
                aws.autoscaling.GroupTagArgs(key=k, value=v, propagate_at_launch=True)
                for k, v in sorted(plan.tags.items())
            ],
            # The autoscaler owns the group's size after creation; never fight it.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["desiredCapacity"]),
        )
        # The same hooks as resources of their own: initial hooks exist before the first node
        # launches but apply at creation only; PutLifecycleHook (this resource) updates an existing
        # group's hooks in place when a timeout changes.
        for hook in self._hooks(plan):
            aws.autoscaling.LifecycleHook(
                f"{name}-{hook['name']}",
                autoscaling_group_name=group.name,
                **hook,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[group]),
            )
        return group

    @staticmethod
    def _hooks(plan: AwsFleetPlan) -> list[dict]:
        """Launch: held until the node reports its engine healthy, abandoned (replaced) when it does not
        within the timeout. Terminate: held until the node's agent has drained its requests; if the
        agent is gone, the timeout lets the termination go ahead."""
        r = plan.readiness
        return [
            {
                "name": LAUNCH_HOOK,
                "lifecycle_transition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                "default_result": "ABANDON",
                "heartbeat_timeout": r.launch_hook_timeout,
            },
            {
                "name": DRAIN_HOOK,
                "lifecycle_transition": "autoscaling:EC2_INSTANCE_TERMINATING",
                "default_result": "CONTINUE",
                "heartbeat_timeout": r.drain_hook_timeout,
            },
        ]

    # -- scaling ----------------------------------------------------------------------------

    def _scaling(self, name, plan: AwsFleetPlan, group, endpoint, child) -> None:
        s = plan.scaling
        dims = {"AutoScalingGroupName": plan.asg_name}
        aws.autoscaling.Policy(
            f"{name}-track-{s.signal.replace('_', '-')}",
            autoscaling_group_name=group.name,
            policy_type="TargetTrackingScaling",
            estimated_instance_warmup=plan.readiness.grace_seconds,
            target_tracking_configuration=aws.autoscaling.PolicyTargetTrackingConfigurationArgs(
                target_value=s.target_value,
                disable_scale_in=True,
                customized_metric_specification=aws.autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationArgs(
                    namespace=METRICS_NAMESPACE,
                    metric_name=s.metric_name,
                    statistic="Average",
                    unit=s.metric_unit,
                    metric_dimensions=[
                        aws.autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricDimensionArgs(
                            name=k, value=v
                        )
                        for k, v in dims.items()
                    ],
                ),
            ),
            opts=child,
        )

        scale_in = aws.autoscaling.Policy(
            f"{name}-scale-in",
            autoscaling_group_name=group.name,
            policy_type="SimpleScaling",
            adjustment_type="ChangeInCapacity",
            scaling_adjustment=-1,
            cooldown=s.scale_in_cooldown,
            opts=child,
        )
        # A group that may reach zero must not remove its last node while requests still arrive:
        # a trickle keeps the average below the threshold, and each request after the node goes
        # would wait a cold start (the wake alarm starts one again a minute later). So at desired
        # capacity 1 the alarm reads the threshold itself (never below it) unless the node's peak
        # load was 0 in that minute: the last node goes only after a whole cooldown with nothing
        # in flight. Above one node it is the plain average.
        if plan.min_size == 0:

            def q(qid: str, namespace: str, metric: str, stat: str):
                return aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id=qid,
                    return_data=False,
                    metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                        namespace=namespace, metric_name=metric, dimensions=dims, stat=stat, period=60
                    ),
                )

            metric_args: dict = {
                "metric_queries": [
                    q("load", METRICS_NAMESPACE, s.scale_in_metric, "Average"),
                    q("peak", METRICS_NAMESPACE, s.scale_in_metric, "Maximum"),
                    q("desired", "AWS/AutoScaling", "GroupDesiredCapacity", "Maximum"),
                    aws.cloudwatch.MetricAlarmMetricQueryArgs(
                        id="scalein",
                        return_data=True,
                        label="Load per node (last node: only when idle)",
                        expression=f"IF(desired > 1, load, IF(peak > 0, {s.scale_in_threshold:g}, load))",
                    ),
                ]
            }
        else:
            metric_args = {
                "namespace": METRICS_NAMESPACE,
                "metric_name": s.scale_in_metric,
                "dimensions": dims,
                "statistic": "Average",
                "period": 60,
            }
        aws.cloudwatch.MetricAlarm(
            f"{name}-scale-in",
            alarm_description=f"{s.scale_in_metric} per node below {s.scale_in_threshold:g} for "
            f"{s.scale_in_cooldown}s: remove one node"
            + (" (the last one only when nothing was in flight)" if plan.min_size == 0 else ""),
            **metric_args,
            evaluation_periods=max(1, s.scale_in_cooldown // 60),
            threshold=s.scale_in_threshold,
            comparison_operator="LessThanThreshold",
            # No data means no healthy node published: nothing to judge, so no scale-in.
            treat_missing_data="notBreaching",
            alarm_actions=[scale_in.arn],
            tags=plan.tags,
            opts=child,
        )

        if s.wake_from_zero:
            self._wake(name, plan, group, endpoint if s.wake_on_endpoint else None, child)

    def _slo_alarms(self, name, plan: AwsFleetPlan, key, child) -> pulumi.Input[str]:
        """Each SLO alert (planning.aws_observability): one metric alarm per window, with no
        actions, and a composite alarm that is in ALARM only while both are, which notifies the
        spec's topic or the fleet's own, encrypted with the fleet's key."""
        topic: pulumi.Input[str]
        if plan.alert_topic_arn is not None:
            topic = plan.alert_topic_arn
        else:
            topic = aws.sns.Topic(
                f"{name}-alerts", name=f"{plan.prefix}-alerts", kms_master_key_id=key.arn, tags=plan.tags, opts=child
            ).arn
        for slo in plan.slo_alarms:
            windows = []
            for w in slo.windows:
                windows.append(
                    aws.cloudwatch.MetricAlarm(
                        w.name,
                        name=w.name,
                        alarm_description=f"{slo.description}: the {w.period // 60}-minute window",
                        comparison_operator="GreaterThanThreshold",
                        threshold=w.threshold,
                        evaluation_periods=1,
                        datapoints_to_alarm=1,
                        # No traffic is no breach: a fleet at zero must not page.
                        treat_missing_data="notBreaching",
                        actions_enabled=False,
                        metric_queries=[
                            aws.cloudwatch.MetricAlarmMetricQueryArgs(
                                id=q.id,
                                expression=q.expression,
                                return_data=q.return_data,
                                metric=None
                                if q.metric is None
                                else aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                                    namespace=q.namespace,
                                    metric_name=q.metric,
                                    stat=str(q.stat),
                                    period=int(q.period or 60),
                                    dimensions=dict(q.dimensions),
                                ),
                            )
                            for q in w.queries
                        ],
                        tags=plan.tags,
                        opts=child,
                    )
                )
            aws.cloudwatch.CompositeAlarm(
                slo.name,
                alarm_name=slo.name,
                alarm_description=slo.description,
                alarm_rule=slo.rule,
                alarm_actions=[topic],
                ok_actions=[topic],
                tags={**plan.tags, "severity": slo.alert.severity},
                opts=pulumi.ResourceOptions(parent=self, depends_on=windows),
            )
        return topic

    def _wake(self, name, plan: AwsFleetPlan, group, endpoint, child) -> None:
        """Start one node when the group's desired capacity is 0 and anything shows demand.

        Desired capacity, not in-service instances: a spot reclaim of every node leaves desired
        capacity where it was (the group relaunches), and waking on in-service would set a group
        scaled out to N back to 1. Demand while empty: connections the endpoint's NLB could not route
        (ELB reports a metric only in periods it is non-zero, hence FILL), and InferStack/PendingRequests
        published for the group by a front door (the hybrid overflow gateway).
        """
        dims = {"AutoScalingGroupName": plan.asg_name}
        wake = aws.autoscaling.Policy(
            f"{name}-wake",
            autoscaling_group_name=group.name,
            policy_type="StepScaling",
            adjustment_type="ExactCapacity",
            step_adjustments=[
                aws.autoscaling.PolicyStepAdjustmentArgs(scaling_adjustment=1, metric_interval_lower_bound="0")
            ],
            opts=child,
        )

        def query(qid: str, namespace: str, metric: str, dimensions, stat: str = "Sum"):
            return aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id=qid,
                metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                    namespace=namespace, metric_name=metric, dimensions=dimensions, stat=stat, period=60
                ),
                # PutMetricAlarm wants exactly one query returning data (the `wake` expression);
                # an omitted ReturnData means true to the API, so say false.
                return_data=False,
            )

        queries = [
            query("desired", "AWS/AutoScaling", "GroupDesiredCapacity", dims, "Maximum"),
            query("pending", METRICS_NAMESPACE, DEMAND_METRIC, dims),
        ]
        demand = ["FILL(pending, 0)"]
        if endpoint is not None:
            lb = {"LoadBalancer": endpoint.load_balancer_arn_suffix}
            for i, metric in enumerate(NLB_DEMAND_METRICS):
                queries.append(query(f"lb{i}", "AWS/NetworkELB", metric, lb))
                demand.append(f"FILL(lb{i}, 0)")
        queries.append(
            aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id="wake",
                # desired is not FILLed: with no group metric there is no proof the group is empty, and
                # ExactCapacity 1 on a scaled-out group would shrink it.
                expression=f"IF(desired < 1 AND ({' + '.join(demand)}) > 0, 1, 0)",
                label="Group at zero with demand",
                return_data=True,
            )
        )
        aws.cloudwatch.MetricAlarm(
            f"{name}-wake",
            alarm_description="Desired capacity 0 and demand (unroutable endpoint connections or pending "
            "requests): start one node",
            metric_queries=queries,
            evaluation_periods=1,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[wake.arn],
            tags=plan.tags,
            opts=child,
        )


def deploy(name: str, plan, ctx) -> dict[str, pulumi.Input]:
    """The target kind's entry point (inferstack.kinds): one fleet, its stack outputs."""
    opts = pulumi.ResourceOptions(provider=ctx.aws(plan.region))
    # One service-linked role per account, declared once for every AWS target of the stack.
    service_role = ctx.once("aws-autoscaling-service-role", lambda: autoscaling_service_role(plan.tags, opts))
    fleet = AwsGpuFleet(name, plan, opts=opts, key_depends_on=service_role)
    ctx.deployed[name] = fleet
    # image_id: the AMI the nodes run (pinned; see the spec's ami_id for how to move it)
    outputs: dict[str, pulumi.Input] = {
        "asg_name": fleet.asg_name,
        "vpc_id": fleet.vpc_id,
        "security_group_id": fleet.security_group_id,
        "image_id": fleet.image_id,
    }
    if fleet.endpoint is not None:
        outputs |= {
            "endpoint_service_name": fleet.endpoint.service_name,
            "endpoint_dns_name": fleet.endpoint.dns_name,
            "consumer_dns_names": fleet.endpoint.consumer_dns_names,
            "endpoint_domain": fleet.endpoint.domain_name,
            "consumer_zone_ids": fleet.endpoint.consumer_zone_ids,
        }
    return outputs
