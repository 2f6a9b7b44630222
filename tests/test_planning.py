"""Pure planning logic, no Pulumi: sizing, network and scaling plans, names, IAM documents, quoting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inferstack import catalog
from inferstack.catalog import GIB, MIB
from inferstack.planning import aws_fleet, iam, naming, sizing
from inferstack.render import BOOT_TIME_ARGS, _shell_args
from inferstack.spec.loader import load_spec
from inferstack.spec.models import AwsGpuFleetTarget, Model

VALID = Path(__file__).resolve().parent / "spec_corpus" / "valid"
DIGEST = "sha256:0d4c8d8bd1b4dbbd4ec0a02c4ec7c2fa4f2e3db0e8ee7c1d9b3a1f0e5d6c7b8a"


def model(parameters: int | str = 8_030_261_248, precision: str = "bf16", context_length: int = 8192, **extra) -> Model:
    return Model.model_validate(
        {
            "parameters": parameters,
            "precision": precision,
            "context_length": context_length,
            "source": "s3://acme-models/llama",
            **extra,
        }
    )


def target(**overrides) -> AwsGpuFleetTarget:
    data = {
        "kind": "aws-gpu-fleet",
        "region": "eu-central-1",
        "instance_types": ["g6.xlarge"],
        "capacity": {"min": 0, "max": 4},
        "autoscaling": {"signal": "queue_depth", "target": 4},
    }
    data.update(overrides)
    return AwsGpuFleetTarget.model_validate(data)


def itype(name: str) -> catalog.AwsInstanceType:
    return catalog.aws_instance_types()[name]


# -- sizing ------------------------------------------------------------------------------------


def test_footprint_of_llama_3_8b_in_bf16():
    fp = sizing.footprint("Llama-3-8B", model())
    assert fp.weights_bytes == 16_060_522_496  # 8_030_261_248 parameters x 2 bytes
    assert fp.weights_bytes == pytest.approx(16.06e9, rel=1e-3)
    # KV cache from the catalog's architecture: 2 (K, V) x 32 layers x 8 KV heads x 128 x 2 bytes x 8192 tokens
    assert fp.kv_cache_bytes == 2 * 32 * 8 * 128 * 2 * 8192 == 1 * GIB
    assert fp.overhead_bytes == int(16_060_522_496 * 0.10)
    assert fp.total_bytes == fp.weights_bytes + fp.kv_cache_bytes + fp.overhead_bytes
    assert "GiB KV cache" in fp.describe()


def test_footprint_looks_the_catalog_up_case_insensitively():
    assert sizing.footprint("llama-3-8b", model()) == sizing.footprint("Llama-3-8B", model())


def test_footprint_scales_with_precision_and_context():
    bf16 = sizing.footprint("llama-3-8b", model(precision="bf16"))
    fp8 = sizing.footprint("llama-3-8b", model(precision="fp8"))
    int4 = sizing.footprint("llama-3-8b", model(precision="int4"))
    assert bf16.weights_bytes == 2 * fp8.weights_bytes == 4 * int4.weights_bytes
    long = sizing.footprint("llama-3-8b", model(context_length=131072))
    assert long.kv_cache_bytes == 16 * bf16.kv_cache_bytes


def test_footprint_of_an_unknown_model_leaves_the_kv_cache_unsized():
    fp = sizing.footprint("acme-secret-model", model())
    assert fp.kv_cache_bytes is None
    assert fp.total_bytes == fp.weights_bytes + fp.overhead_bytes
    assert "KV cache unsized" in fp.describe()


def test_the_specs_architecture_overrides_the_catalog():
    m = model(architecture={"layers": 10, "kv_heads": 2, "head_dim": 64})
    assert sizing.footprint("llama-3-8b", m).kv_cache_bytes == 2 * 10 * 2 * 64 * 2 * 8192


def test_usable_bytes_is_ninety_percent_of_all_accelerator_memory():
    assert sizing.usable_bytes(itype("g6.xlarge").total_accelerator_memory_bytes) == int(22888 * MIB * 0.9)
    assert sizing.usable_bytes(itype("p4de.24xlarge").total_accelerator_memory_bytes) == int(8 * 81920 * MIB * 0.9)


@pytest.mark.parametrize(
    ("name", "m", "instance", "expected"),
    [
        ("llama-3-8b", model(), "g6.xlarge", True),  # ~17.5 GiB of 20.1 usable
        ("llama-3-8b", model(context_length=131072), "g6.xlarge", False),  # 16 GiB of KV cache more
        ("llama-3-8b", model(), "g6f.2xlarge", False),  # a quarter L4
        ("llama-3-70b", model(parameters="70.6B"), "g6e.xlarge", False),
        ("llama-3-70b", model(parameters="70.6B"), "p4de.24xlarge", True),
        ("llama-3-70b", model(parameters="70.6B", precision="fp8"), "g6e.12xlarge", True),
        ("llama-3.1-405b", model(parameters="405B"), "p4de.24xlarge", False),
        ("llama-3.1-405b", model(parameters="405B", precision="fp8"), "p4de.24xlarge", True),
    ],
)
def test_fits(name, m, instance, expected):
    assert sizing.fits(sizing.footprint(name, m), itype(instance).total_accelerator_memory_bytes) is expected


def test_fits_is_inclusive_at_the_boundary():
    memory = itype("g6.xlarge").total_accelerator_memory_bytes
    usable = sizing.usable_bytes(memory)
    assert sizing.fits(sizing.Footprint(usable, 0, 0), memory)
    assert not sizing.fits(sizing.Footprint(usable + 1, 0, 0), memory)


def test_startup_seconds_of_llama_3_8b():
    # 90 boot + 120 pull + 120 warm-up + 16.06 GB at 250 MiB/s (61 s) + at 1 GiB/s (15 s) = 406 s -> 7 min
    assert sizing.startup_seconds(sizing.footprint("llama-3-8b", model())) == 420


@pytest.mark.parametrize("parameters", ["100M", "1B", "8B", "70.6B", "405B", "2T", "10T"])
def test_startup_seconds_bounds(parameters):
    seconds = sizing.startup_seconds(sizing.footprint("x", model(parameters=parameters)))
    assert 300 <= seconds <= 7200
    assert seconds % 60 == 0


def test_startup_seconds_grows_with_model_size_and_is_capped():
    sizes = ["1B", "8B", "70.6B", "405B"]
    seconds = [sizing.startup_seconds(sizing.footprint("x", model(parameters=p))) for p in sizes]
    assert seconds == sorted(seconds)
    assert len(set(seconds)) == len(seconds)
    assert sizing.startup_seconds(sizing.footprint("x", model(parameters="10T"))) == 7200
    assert sizing.startup_seconds(sizing.Footprint(0, None, 0)) == 360  # 330 s of fixed cost, rounded up


# -- network -------------------------------------------------------------------------------------


def test_network_for_a_16_over_three_zones_takes_the_first_three_20s():
    plan = aws_fleet.plan_network(target(network={"cidr": "10.70.0.0/16", "availability_zones": 3}))
    assert plan.creates_vpc
    assert plan.vpc_cidr == "10.70.0.0/16"
    assert plan.subnet_cidrs == ("10.70.0.0/20", "10.70.16.0/20", "10.70.32.0/20")
    assert plan.vpc_id is None and plan.subnet_ids == ()
    assert plan.interface_endpoints == aws_fleet.INTERFACE_ENDPOINT_SERVICES
    assert {"ecr.api", "ecr.dkr", "sts", "logs", "monitoring", "ssm"} <= set(plan.interface_endpoints)


def test_network_defaults_to_a_16_over_two_zones():
    plan = aws_fleet.plan_network(target())
    assert plan.vpc_cidr == "10.64.0.0/16"
    assert plan.subnet_cidrs == ("10.64.0.0/20", "10.64.16.0/20")


def test_network_for_a_22_uses_26_subnets():
    plan = aws_fleet.plan_network(target(network={"cidr": "10.90.4.0/22", "availability_zones": 2}))
    assert plan.subnet_cidrs == ("10.90.4.0/26", "10.90.4.64/26")


def test_existing_vpc_passes_ids_through_and_creates_no_endpoints():
    subnets = ["subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"]
    plan = aws_fleet.plan_network(target(network={"vpc_id": "vpc-0a1b2c3d4e5f60718", "subnet_ids": subnets}))
    assert not plan.creates_vpc
    assert plan.vpc_id == "vpc-0a1b2c3d4e5f60718"
    assert plan.subnet_ids == tuple(subnets)
    assert plan.vpc_cidr is None
    assert plan.subnet_cidrs == ()
    assert plan.interface_endpoints == ()


# -- scaling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("minimum", "wakes"), [(0, True), (1, False), (3, False)])
def test_wake_from_zero_iff_min_is_zero(minimum, wakes):
    plan = aws_fleet.plan_scaling(target(capacity={"min": minimum, "max": 4}), catalog.engines()["vllm"])
    assert plan.wake_from_zero is wakes


@pytest.mark.parametrize(
    ("signal", "metric", "unit"),
    [
        ("queue_depth", "PendingRequests", "Count"),
        ("requests_per_target", "RunningRequests", "Count"),
        ("gpu_utilization", "GPUUtilization", "Percent"),
    ],
)
def test_scaling_metric_per_signal(signal, metric, unit):
    plan = aws_fleet.plan_scaling(
        target(autoscaling={"signal": signal, "target": 65.5, "scale_in_cooldown": 600}), catalog.engines()["vllm"]
    )
    assert (plan.signal, plan.metric_name, plan.metric_unit) == (signal, metric, unit)
    assert plan.target_value == 65.5
    assert plan.scale_in_cooldown == 600


def test_demand_metric_is_the_queue_metric():
    assert aws_fleet.DEMAND_METRIC == "PendingRequests"


# -- ECR -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (
            f"123456789012.dkr.ecr.eu-central-1.amazonaws.com/vllm-openai@{DIGEST}",
            ("123456789012", "eu-central-1", "vllm-openai"),
        ),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/vllm:v0.6.3", ("123456789012", "us-east-1", "team/vllm")),
        ("210987654321.dkr.ecr-fips.us-west-2.amazonaws.com/sglang:1", ("210987654321", "us-west-2", "sglang")),
    ],
)
def test_parse_ecr(image, expected):
    ecr = aws_fleet.parse_ecr(image)
    assert ecr is not None
    assert (ecr.account, ecr.region, ecr.repository) == expected
    assert ecr.registry == image.split("/", 1)[0]  # the host as written, FIPS endpoints included


@pytest.mark.parametrize(
    "image",
    [
        f"vllm/vllm-openai@{DIGEST}",
        "public.ecr.aws/neuron/vllm:1",
        "nvcr.io/nvidia/tritonserver:24.10-trtllm-python-py3",
        "12345.dkr.ecr.eu-central-1.amazonaws.com/short-account:1",
    ],
)
def test_parse_ecr_ignores_other_registries(image):
    assert aws_fleet.parse_ecr(image) is None


# -- engine arguments ---------------------------------------------------------------------------


def test_engine_args_for_vllm_keep_the_tensor_parallel_placeholder_and_append_serving_args():
    spec = load_spec(VALID / "two-models.yaml").spec
    spec = spec.model_copy(update={"serving": spec.serving.model_copy(update={"args": ["--enable-prefix-caching"]})})
    name, m = spec.model_of("small")
    assert aws_fleet.engine_args(spec, name, m) == [
        "--model", "/models/llama-3-8b",
        "--served-model-name", "llama-3-8b",
        "--host", "0.0.0.0",
        "--port", "8000",
        "--max-model-len", "8192",
        "--tensor-parallel-size", "{tensor_parallel}",
        "--enable-prefix-caching",
    ]  # fmt: skip


def test_engine_args_for_sglang_start_with_its_entrypoint():
    spec = load_spec(VALID / "warm-pool-large-model.yaml").spec
    name, m = spec.model_of("steady")
    args = aws_fleet.engine_args(spec, name, m)
    assert args[:3] == ["python3", "-m", "sglang.launch_server"]
    assert args[args.index("--model-path") + 1] == "/models/llama-3-70b"
    assert args[args.index("--tp") + 1] == "{tensor_parallel}"
    assert args[args.index("--context-length") + 1] == "8192"
    assert args[-2:] == ["--mem-fraction-static", "0.85"]


def test_engine_args_for_tgi_use_the_spec_port():
    spec = load_spec(VALID / "explicit-regions-existing-vpc.yaml").spec
    name, m = spec.model_of("ireland")
    args = aws_fleet.engine_args(spec, name, m)
    assert args[args.index("--port") + 1] == "8080"
    assert args[args.index("--max-total-tokens") + 1] == "16384"
    assert args[args.index("--num-shard") + 1] == "{tensor_parallel}"
    assert not any("{" in a and a != "{tensor_parallel}" for a in args)  # every other placeholder filled


# -- names and tags ---------------------------------------------------------------------------


def test_resource_prefix_joins_name_stack_and_target():
    spec = load_spec(VALID / "minimal.yaml").spec
    assert naming.resource_prefix(spec, "dev", "main") == "tiny-dev-main"


def test_resource_prefix_is_at_most_40_characters_and_never_ends_in_a_dash():
    base = load_spec(VALID / "minimal.yaml").spec
    longest = "a" * 32
    spec = base.model_copy(update={"metadata": base.metadata.model_copy(update={"name": longest})})
    for stack, tgt in [("production", "b" * 32), ("s" * 7, "t"), ("x", "y" * 20), ("dev", "main")]:
        prefix = naming.resource_prefix(spec, stack, tgt)
        assert len(prefix) <= 40
        assert not prefix.endswith("-")
        assert prefix.startswith(longest)
    # a name cut to fit keeps a hash of the whole: two targets that differ only past the cut differ
    a, b = naming.resource_prefix(spec, "stack6", "target-a"), naming.resource_prefix(spec, "stack6", "target-b")
    assert a != b and len(a) == len(b) == 40
    assert naming.resource_prefix(spec, "x", "y") == f"{longest}-x-y"  # short enough: no hash


def test_standard_tags():
    spec = load_spec(VALID / "minimal.yaml").spec
    tags = naming.standard_tags(spec, "dev", "llama-3-8b")
    assert tags == {
        "stack": "dev",
        "environment": "dev",
        "team": "ml",
        "model": "llama-3-8b",
        "data-classification": "public",
        "workload": "serving",
        "managed-by": "inferstack",
    }
    assert all(k == k.lower() and "_" not in k for k in tags)
    assert naming.standard_tags(spec, "dev", "llama-3-8b", "batch")["workload"] == "batch"


# -- IAM and KMS -------------------------------------------------------------------------------

LOG_GROUP = "arn:aws:logs:eu-central-1:123456789012:log-group:/inferstack/assistant/dev/burst"
REPO = "arn:aws:ecr:eu-central-1:123456789012:repository/vllm-openai"


def node_policy(**overrides) -> dict:
    args = {
        "partition": "aws",
        "bucket": "acme-models-eu-central-1",
        "prefix": "meta-llama/Llama-3.1-8B-Instruct",
        "ecr_repository_arn": REPO,
        "log_group_arn": LOG_GROUP,
        "metrics_namespace": "InferStack",
    }
    args.update(overrides)
    return json.loads(iam.node_policy(**args))


def actions(statement: dict) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def by_action(policy: dict, action: str) -> list[dict]:
    return [s for s in policy["Statement"] if action in actions(s)]


def test_node_policy_has_no_wildcard_actions():
    policy = node_policy()
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement
        for action in actions(statement):
            assert action != "*"
            assert not action.endswith(":*"), action
            assert "*" not in action, action


def test_node_policy_reads_only_the_models_prefix():
    (get,) = by_action(node_policy(), "s3:GetObject")
    assert get["Resource"] == "arn:aws:s3:::acme-models-eu-central-1/meta-llama/Llama-3.1-8B-Instruct/*"
    (listing,) = by_action(node_policy(), "s3:ListBucket")
    assert listing["Resource"] == "arn:aws:s3:::acme-models-eu-central-1"
    assert listing["Condition"] == {
        "StringLike": {"s3:prefix": ["meta-llama/Llama-3.1-8B-Instruct/*", "meta-llama/Llama-3.1-8B-Instruct"]}
    }


def test_node_policy_for_a_whole_bucket_and_another_partition():
    policy = node_policy(partition="aws-us-gov", prefix="")
    (get,) = by_action(policy, "s3:GetObject")
    assert get["Resource"] == "arn:aws-us-gov:s3:::acme-models-eu-central-1/*"


def test_node_policy_only_writes_its_own_log_group_and_namespace():
    policy = node_policy()
    (logs,) = by_action(policy, "logs:PutLogEvents")
    assert logs["Resource"] == f"{LOG_GROUP}:log-stream:*"
    (metrics,) = by_action(policy, "cloudwatch:PutMetricData")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "InferStack"}}


def test_node_policy_uses_resource_star_only_where_aws_allows_nothing_else():
    star = {a for s in node_policy()["Statement"] if s["Resource"] == "*" for a in actions(s)}
    assert star == {"cloudwatch:PutMetricData", "ecr:GetAuthorizationToken", *iam.SESSION_MANAGER_ACTIONS}


def test_node_policy_pulls_from_ecr_only_when_the_image_is_in_ecr():
    with_ecr = node_policy()
    (pull,) = by_action(with_ecr, "ecr:BatchGetImage")
    assert pull["Resource"] == REPO
    assert sorted(actions(pull)) == sorted(iam.ECR_PULL_ACTIONS)
    assert by_action(with_ecr, "ecr:GetAuthorizationToken")

    without = node_policy(ecr_repository_arn=None)
    assert not [a for s in without["Statement"] for a in actions(s) if a.startswith("ecr:")]
    assert len(without["Statement"]) == len(with_ecr["Statement"]) - 2


def test_kms_key_policy_grants_no_kms_star():
    policy = json.loads(iam.kms_key_policy("aws", "123456789012", "eu-central-1"))
    all_actions = [a for s in policy["Statement"] for a in actions(s)]
    assert "kms:*" not in all_actions
    assert "*" not in all_actions
    sids = {s["Sid"]: s for s in policy["Statement"]}
    admin = sids["KeyAdministration"]
    assert admin["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert not {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"} & set(actions(admin))  # manages, never uses
    grant = sids["AutoScalingAttachesVolumes"]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    logs = sids["CloudWatchLogsEncryptsThisAccountsGroups"]
    assert logs["Principal"] == {"Service": "logs.eu-central-1.amazonaws.com"}
    assert logs["Condition"]["ArnLike"] == {
        "kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:eu-central-1:123456789012:log-group:*"
    }


def test_assume_role_names_only_the_service():
    policy = json.loads(iam.assume_role("ec2.amazonaws.com"))
    assert policy["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]


# -- shell quoting ------------------------------------------------------------------------------


def test_shell_args_quotes_what_needs_it_and_fills_tensor_parallel_at_boot():
    args = ["--model", "/models/llama-3-8b", "--tensor-parallel-size", "{tensor_parallel}", "--chat-template", "a b"]
    assert (
        _shell_args(args)
        == "--model /models/llama-3-8b --tensor-parallel-size \"$TENSOR_PARALLEL\" --chat-template 'a b'"
    )


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [
        ("plain", "plain"),
        ("a b", "'a b'"),
        ("$(reboot)", "'$(reboot)'"),
        ("$HOME", "'$HOME'"),
        ("it's", "'it'\"'\"'s'"),
        ("a;rm -rf /", "'a;rm -rf /'"),
        ("", "''"),
    ],
)
def test_shell_args_quotes_each_argument(arg, quoted):
    assert _shell_args([arg]) == quoted


def test_only_the_whole_placeholder_is_expanded():
    assert BOOT_TIME_ARGS == {"{tensor_parallel}": '"$TENSOR_PARALLEL"'}
    assert _shell_args(["{tensor_parallel}", "{model_dir}"]) == "\"$TENSOR_PARALLEL\" '{model_dir}'"


def test_a_model_key_borrows_the_catalogs_architecture_only_when_the_sizes_agree():
    spec = load_spec(VALID / "minimal.yaml").spec
    model = spec.models["llama-3-8b"]
    assert sizing.footprint("llama-3-8b", model).kv_cache_bytes == 1024**3  # 8B: the catalog's Llama-3-8B
    bigger = model.model_copy(update={"parameters": 70_000_000_000})
    assert sizing.footprint("llama-3-8b", bigger).kv_cache_bytes is None  # not that model: KV unsized
