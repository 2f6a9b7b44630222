"""The Cloud TPU queued-resource dynamic provider, against a recording stand-in for the API."""

from __future__ import annotations

from conftest import STACKS
from inferstack.components.gcp_queued_resource import TPU_API, QueuedResourceProvider
from inferstack.planning.gcp import plan_tpu, queued_resource_body
from inferstack.spec.loader import load_spec


class FakeResponse:
    def __init__(self, status: int = 200, body: dict | None = None):
        self.status_code, self._body = status, body or {}

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(f"HTTP {self.status_code}")

    def json(self) -> dict:
        return self._body


class FakeSession:
    def __init__(self, response: FakeResponse | None = None):
        self.calls: list[tuple] = []
        self.response = response or FakeResponse()

    def post(self, url, **kw):
        self.calls.append(("POST", url, kw))
        return self.response

    def get(self, url, **kw):
        self.calls.append(("GET", url, kw))
        return self.response

    def delete(self, url, **kw):
        self.calls.append(("DELETE", url, kw))
        return self.response


def _props() -> dict:
    spec = load_spec(STACKS / "batch.yaml").spec
    plan = plan_tpu(spec, "batch", "batch")
    body = queued_resource_body(plan, "assistant-batch-batch-0", network="n", subnetwork="s", service_account="sa@x")
    return {"project": "acme-ml-staging", "zone": "europe-west4-b", "queuedResourceId": "assistant-batch-batch-0",
            "resourceType": "tpu.googleapis.com/QueuedResource", "body": body}


def test_create_posts_the_whole_queued_resource():
    session = FakeSession()
    result = QueuedResourceProvider(lambda: session).create(_props())
    method, url, kw = session.calls[0]
    assert (method, url) == ("POST", f"{TPU_API}/projects/acme-ml-staging/locations/europe-west4-b/queuedResources")
    assert kw["params"] == {"queuedResourceId": "assistant-batch-batch-0"}
    assert kw["json"]["spot"] == {} and kw["json"]["tpu"]["nodeSpec"][0]["node"]["serviceAccount"]["email"] == "sa@x"
    assert result.id == "projects/acme-ml-staging/locations/europe-west4-b/queuedResources/assistant-batch-batch-0"


def test_any_change_replaces_and_delete_forces():
    provider = QueuedResourceProvider(lambda: session)
    session = FakeSession(FakeResponse(404))
    old, new = _props(), _props()
    new["body"]["tpu"]["nodeSpec"][0]["node"]["runtimeVersion"] = "v2-alpha-tpuv6e"
    diff = provider.diff("id", old, new)
    assert diff.changes and diff.replaces == ["body"] and diff.delete_before_replace
    assert not provider.diff("id", old, _props()).changes
    provider.delete("projects/p/locations/z/queuedResources/q", old)  # 404: already gone, fine
    assert session.calls[-1][2]["params"] == {"force": "true"}


def test_read_reports_a_missing_resource_as_gone():
    session = FakeSession(FakeResponse(404))
    assert QueuedResourceProvider(lambda: session).read("projects/p/locations/z/queuedResources/q", {}).id is None
    session.response = FakeResponse(200, {"state": {"state": "WAITING_FOR_RESOURCES"}})
    assert QueuedResourceProvider(lambda: session).read("x", {"a": 1}).outs == {"a": 1, "state": "WAITING_FOR_RESOURCES"}


def test_reserved_capacity_is_the_nodes_scheduling_config_in_v2():
    spec = load_spec(STACKS / "batch.yaml").spec
    plan = plan_tpu(spec, "batch", "batch")
    reserved = plan.__class__(**{**plan.__dict__, "provisioning": "reserved"})
    body = queued_resource_body(reserved, "n", network="n", subnetwork="s", service_account="sa")
    # QueuedResource.Guaranteed in v2 has only minDuration; `reserved` there is v2alpha1's.
    assert "guaranteed" not in body and "spot" not in body
    assert body["tpu"]["nodeSpec"][0]["node"]["schedulingConfig"] == {"reserved": True}
