"""GcpNodeIdentity: the dedicated service account a fleet's or a slice's nodes run as.

Never the default compute service account. It may write logs and metrics, read the model's
prefix of its bucket, and pull from the one Artifact Registry repository of its image.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from inferstack.errors import CloudCheckError
from inferstack.planning.gcp import SERVICE_ACCOUNT_ROLES, ArtifactRepository, Weights
from inferstack.planning.naming import gcp_name


def require_uniform_access(bucket: str, uniform: bool) -> None:
    """IAM Conditions on a bucket need uniform bucket-level access (Cloud Storage docs, "Uniform
    bucket-level access": it is required to use IAM Conditions, and cannot be turned off while
    conditions exist); without it the conditional grant is refused."""
    if not uniform:
        raise CloudCheckError(
            f"the weights bucket gs://{bucket} has uniform bucket-level access off, and the nodes' "
            "read access is a conditional IAM grant, which needs it: turn it on with "
            f"`gcloud storage buckets update gs://{bucket} --uniform-bucket-level-access`"
        )


def weights_condition(weights: Weights) -> str:
    """IAM condition: objects under the model's prefix, plus the bucket itself (listing needs it).

    The limit: `storage.objects.list` is checked against the bucket, not an object, so a
    `resource.name.startsWith(<prefix>)` condition never matches a list request, and the
    bucket clause that lets the node list its prefix lets it list every object *name* in the
    bucket. Reading an object (`storage.objects.get`) stays limited to the model's prefix, so no
    other model's weights can be read. Scoping the listing too takes a managed folder per model
    prefix with the grant on the folder (Cloud Storage "Managed folders"), or a bucket per model;
    see the README's "Weights access on GCP"."""
    objects = f"projects/_/buckets/{weights.bucket}/objects/{weights.prefix + '/' if weights.prefix else ''}"
    return f'resource.name.startsWith("{objects}") || resource.type == "storage.googleapis.com/Bucket"'


class GcpNodeIdentity(pulumi.ComponentResource):
    email: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        project: str,
        prefix: str,
        weights: Weights,
        repository: ArtifactRepository | None,
        collector_repository: ArtifactRepository | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("inferstack:iam:GcpNodeIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = gcp.serviceaccount.Account(
            f"{name}-sa",
            project=project,
            account_id=gcp_name("is", prefix, limit=30),
            display_name=f"inferstack {prefix} serving nodes",
            opts=child,
        )
        member = account.email.apply(lambda email: f"serviceAccount:{email}")
        # Looked up before the grant: the expression waits for the check, so a bucket without
        # uniform access stops the deployment with the fix instead of a refused IAM call.
        bucket = gcp.storage.get_bucket_output(name=weights.bucket, opts=pulumi.InvokeOutputOptions(parent=self))

        def condition(uniform: bool) -> str:
            require_uniform_access(weights.bucket, uniform)
            return weights_condition(weights)

        expression = bucket.uniform_bucket_level_access.apply(condition)
        for role in SERVICE_ACCOUNT_ROLES:
            gcp.projects.IAMMember(
                f"{name}-{role.rsplit('.', 1)[-1].lower()}", project=project, role=role, member=member, opts=child
            )
        gcp.storage.BucketIAMMember(
            f"{name}-weights",
            bucket=weights.bucket,
            role="roles/storage.objectViewer",
            member=member,
            condition=gcp.storage.BucketIAMMemberConditionArgs(
                title="model-weights-only",
                description=f"Read {weights.uri} only",
                expression=expression,
            ),
            opts=child,
        )
        # The engine's repository, and a mirror of the collector when the spec names one.
        for suffix, repo in (("images", repository), ("collector-images", collector_repository)):
            if repo is not None and (suffix == "images" or repo != repository):
                gcp.artifactregistry.RepositoryIamMember(
                    f"{name}-{suffix}",
                    project=repo.project,
                    location=repo.location,
                    repository=repo.repository,
                    role="roles/artifactregistry.reader",
                    member=member,
                    opts=child,
                )
        self.email = account.email
        self.register_outputs({"email": self.email})
