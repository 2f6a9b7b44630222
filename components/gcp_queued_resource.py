"""TpuQueuedResource: a Cloud TPU queued resource, as a Pulumi dynamic resource.

Why dynamic: pulumi-gcp's `tpu.V2QueuedResource` (10.2) has no service account, metadata,
labels, spot or guaranteed fields in its node spec, so a queued slice made with it would run as
the default service account with no startup script. The Cloud TPU API has all of them; this
provider sends the whole QueuedResource (built by `planning.gcp.queued_resource_body`) to it.
Any change replaces the queued resource: the API has no update.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider

TPU_API = "https://tpu.googleapis.com/v2"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REPLACE_ON = ("project", "zone", "queuedResourceId", "body")


def _session():
    """An authorised HTTP session from Application Default Credentials (imported lazily: only
    `pulumi up` needs them)."""
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=[SCOPE])
    return AuthorizedSession(credentials)


class QueuedResourceProvider(ResourceProvider):
    def __init__(self, session_factory=None):
        self._session_factory = session_factory

    def _http(self):
        return (self._session_factory or _session)()

    @staticmethod
    def _parent(props: dict[str, Any]) -> str:
        return f"projects/{props['project']}/locations/{props['zone']}"

    def create(self, props: dict[str, Any]) -> CreateResult:
        response = self._http().post(
            f"{TPU_API}/{self._parent(props)}/queuedResources",
            params={"queuedResourceId": props["queuedResourceId"]},
            json=props["body"],
            timeout=60,
        )
        response.raise_for_status()
        return CreateResult(f"{self._parent(props)}/queuedResources/{props['queuedResourceId']}", outs=dict(props))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        response = self._http().get(f"{TPU_API}/{id_}", timeout=60)
        if response.status_code == 404:
            return ReadResult(None, {})
        response.raise_for_status()
        state = response.json().get("state", {}).get("state", "")
        return ReadResult(id_, {**props, "state": state})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in REPLACE_ON if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=True)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        response = self._http().delete(f"{TPU_API}/{id_}", params={"force": "true"}, timeout=60)
        if response.status_code != 404:
            response.raise_for_status()


class TpuQueuedResource(Resource):
    """Inputs: project, zone, queuedResourceId, resourceType (for the policy pack) and body."""

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(QueuedResourceProvider(), name, {"state": None, **props}, opts)
