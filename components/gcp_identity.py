"""GcpNodeIdentity: the dedicated service account a fleet's or a slice's nodes run as.

Never the default compute service account. It may write logs and metrics, read the model's
prefix of its bucket, and pull from the one Artifact Registry repository of its image.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from inferstack.planning.gcp import SERVICE_ACCOUNT_ROLES, ArtifactRepository, Weights
from inferstack.planning.naming import gcp_name


def weights_condition(weights: Weights) -> str:
    """IAM condition: objects under the model's prefix, plus the bucket itself (listing needs it)."""
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
        for role in SERVICE_ACCOUNT_ROLES:
            gcp.projects.IAMMember(f"{name}-{role.rsplit('.', 1)[-1].lower()}", project=project, role=role,
                                   member=member, opts=child)
        gcp.storage.BucketIAMMember(
            f"{name}-weights",
            bucket=weights.bucket,
            role="roles/storage.objectViewer",
            member=member,
            condition=gcp.storage.BucketIAMMemberConditionArgs(
                title="model-weights-only",
                description=f"Read {weights.uri} only",
                expression=weights_condition(weights),
            ),
            opts=child,
        )
        if repository is not None:
            gcp.artifactregistry.RepositoryIamMember(
                f"{name}-images",
                project=repository.project,
                location=repository.location,
                repository=repository.repository,
                role="roles/artifactregistry.reader",
                member=member,
                opts=child,
            )
        self.email = account.email
        self.register_outputs({"email": self.email})
