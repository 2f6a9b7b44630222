"""The Cloud TPU queued-resource dynamic provider, against a recording stand-in for the API."""

from __future__ import annotations

import uuid

import pytest
import requests

from conftest import STACKS
from inferstack.components.gcp_queued_resource import (
    BODY_LABEL,
    CREATE_TIMEOUT,
    DELETE_TIMEOUT,
    HTTP_ATTEMPTS,
    TPU_API,
    QueuedResourceError,
    QueuedResourceProvider,
    body_hash,
    stamped,
)
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
    """A stand-in for the TPU API: each (method, url) plays its scripted responses in order and
    keeps answering the last one; anything unscripted is a 404. Records every call."""

    def __init__(self, response: FakeResponse | None = None):
        self.calls: list[tuple] = []
        self.response = response or FakeResponse()
        self.script: dict[tuple[str, str], list[FakeResponse]] = {}

    def play(self, method: str, url: str, *responses: FakeResponse) -> FakeSession:
        self.script[(method, url)] = list(responses)
        return self

    def _answer(self, method: str, url: str, kw: dict) -> FakeResponse:
        self.calls.append((method, url, kw))
        if not self.script:
            return self.response
        queue = self.script.get((method, url))
        if not queue:
            return FakeResponse(404, {"error": {"code": 404, "message": "not found"}})
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def post(self, url, **kw):
        return self._answer("POST", url, kw)

    def get(self, url, **kw):
        return self._answer("GET", url, kw)

    def delete(self, url, **kw):
        return self._answer("DELETE", url, kw)


class Clock:
    """Sleep and monotonic time that only move when the provider waits."""

    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def provider(session: FakeSession, clock: Clock | None = None) -> QueuedResourceProvider:
    clock = clock or Clock()
    return QueuedResourceProvider(lambda: session, sleep=clock.sleep, clock=clock)


QR = "projects/acme-ml-staging/locations/europe-west4-b/queuedResources/assistant-batch-batch-0"
COLLECTION = f"{TPU_API}/projects/acme-ml-staging/locations/europe-west4-b/queuedResources"
OP = "projects/acme-ml-staging/locations/europe-west4-b/operations/op-1"


def op(done: bool = False, error: dict | None = None) -> FakeResponse:
    body: dict = {"name": OP, "done": done}
    if error:
        body["error"] = error
    return FakeResponse(200, body)


def qr(state: str, body: dict | None = None, **extra) -> FakeResponse:
    """The queued resource as the API returns it: created from `body` (this stack's by default),
    so its node carries that body's hash label."""
    return FakeResponse(200, {"name": QR, "state": {"state": state, **extra}, **stamped(body or _props()["body"])})


def _props() -> dict:
    spec = load_spec(STACKS / "batch.yaml").spec
    plan = plan_tpu(spec, "batch", "batch")
    body = queued_resource_body(plan, "assistant-batch-batch-0", network="n", subnetwork="s", service_account="sa@x")
    return {
        "project": "acme-ml-staging",
        "zone": "europe-west4-b",
        "queuedResourceId": "assistant-batch-batch-0",
        "resourceType": "tpu.googleapis.com/QueuedResource",
        "body": body,
    }


def test_create_posts_the_whole_queued_resource_and_waits_for_its_operation():
    session = (
        FakeSession()
        .play("POST", COLLECTION, op())
        .play("GET", f"{TPU_API}/{OP}", op(), op(), op(done=True))
        .play("GET", f"{TPU_API}/{QR}", qr("WAITING_FOR_RESOURCES"))
    )
    clock = Clock()
    result = provider(session, clock).create(_props())
    method, url, kw = session.calls[0]
    assert (method, url) == ("POST", COLLECTION)
    assert kw["params"]["queuedResourceId"] == "assistant-batch-batch-0"
    assert str(uuid.UUID(kw["params"]["requestId"])) == kw["params"]["requestId"]  # the API's idempotency key
    assert kw["json"]["spot"] == {} and kw["json"]["tpu"]["nodeSpec"][0]["node"]["serviceAccount"]["email"] == "sa@x"
    assert [c[1] for c in session.calls].count(f"{TPU_API}/{OP}") == 3  # polled until done
    assert clock.sleeps == sorted(clock.sleeps) and clock.sleeps[0] > 0  # with a growing backoff
    assert result.id == QR and result.outs["state"] == "WAITING_FOR_RESOURCES"


def test_an_operation_error_after_acceptance_is_raised_with_the_apis_reason():
    session = (
        FakeSession()
        .play("POST", COLLECTION, op())
        .play("GET", f"{TPU_API}/{OP}", op(), op(done=True, error={"code": 8, "message": "quota TPUV5E exceeded"}))
    )
    with pytest.raises(QueuedResourceError, match="quota TPUV5E exceeded"):
        provider(session).create(_props())


def test_an_operation_that_never_finishes_is_an_error_within_the_bound():
    session = FakeSession().play("POST", COLLECTION, op()).play("GET", f"{TPU_API}/{OP}", op())
    clock = Clock()
    with pytest.raises(QueuedResourceError, match="not done after"):
        provider(session, clock).create(_props())
    assert CREATE_TIMEOUT <= clock.now <= CREATE_TIMEOUT + 60
    assert max(clock.sleeps) <= 30


def test_a_queued_resource_that_failed_or_was_suspended_is_an_error_that_says_why():
    for state, extra, reason in (
        (
            "FAILED",
            {"failedData": {"error": {"code": 3, "message": "topology 4x8 not offered"}}},
            "topology 4x8 not offered",
        ),
        ("SUSPENDED", {"stateInitiator": "SERVICE"}, "SUSPENDED"),
    ):
        session = (
            FakeSession().play("POST", COLLECTION, op(done=True)).play("GET", f"{TPU_API}/{QR}", qr(state, **extra))
        )
        with pytest.raises(QueuedResourceError, match=reason):
            provider(session).create(_props())


def test_throttling_and_server_errors_are_retried_with_the_same_request_id():
    session = (
        FakeSession()
        .play("POST", COLLECTION, FakeResponse(503), FakeResponse(429), op(done=True))
        .play("GET", f"{TPU_API}/{QR}", qr("ACCEPTED"))
    )
    provider(session).create(_props())
    posts = [c[2]["params"]["requestId"] for c in session.calls if c[0] == "POST"]
    assert len(posts) == 3 and len(set(posts)) == 1


def test_a_refused_create_says_what_the_api_said():
    session = FakeSession().play(
        "POST", COLLECTION, FakeResponse(400, {"error": {"code": 400, "message": "bad acceleratorType"}})
    )
    with pytest.raises(QueuedResourceError, match=r"HTTP 400.*bad acceleratorType"):
        provider(session).create(_props())


def test_409_adopts_our_own_slice_and_refuses_someone_elses():
    conflict = FakeResponse(409, {"error": {"code": 409, "message": "already exists"}})
    session = FakeSession().play("POST", COLLECTION, conflict).play("GET", f"{TPU_API}/{QR}", qr("ACTIVE"))
    result = provider(session).create(_props())
    assert result.id == QR and result.outs["state"] == "ACTIVE"

    theirs = _props()["body"]
    theirs["tpu"]["nodeSpec"][0]["node"]["labels"] = {"team": "someone-else"}
    session = (
        FakeSession()
        .play("POST", COLLECTION, conflict)
        .play("GET", f"{TPU_API}/{QR}", FakeResponse(200, {"name": QR, "state": {"state": "ACTIVE"}, **theirs}))
    )
    with pytest.raises(QueuedResourceError, match="already exists but was not created from this stack's current"):
        provider(session).create(_props())


def test_409_while_the_old_slice_is_deleting_waits_it_out_and_creates_again():
    session = (
        FakeSession()
        .play("POST", COLLECTION, FakeResponse(409), op(done=True))
        .play("GET", f"{TPU_API}/{QR}", qr("DELETING"), qr("DELETING"), FakeResponse(404), qr("ACCEPTED"))
    )
    result = provider(session).create(_props())
    assert [c[0] for c in session.calls].count("POST") == 2 and result.outs["state"] == "ACCEPTED"


def test_delete_waits_for_its_operation_and_then_for_the_resource_to_be_gone():
    session = (
        FakeSession()
        .play("DELETE", f"{TPU_API}/{QR}", op())
        .play("GET", f"{TPU_API}/{OP}", op(), op(done=True))
        .play("GET", f"{TPU_API}/{QR}", qr("ACTIVE"), qr("DELETING"), qr("DELETING"), FakeResponse(404))
    )
    provider(session).delete(QR, _props())
    kinds = [(m, u.rsplit("/", 1)[-1]) for m, u, _ in session.calls]
    assert kinds[:2] == [("GET", "assistant-batch-batch-0"), ("DELETE", "assistant-batch-batch-0")]
    assert session.calls[1][2]["params"]["force"] == "true" and session.calls[1][2]["params"]["requestId"]
    # only after the 404 does delete return: the subnet and a re-create come after that
    assert kinds[-1] == ("GET", "assistant-batch-batch-0") and kinds.count(("GET", "op-1")) == 2


def test_a_failed_delete_is_raised():
    session = (
        FakeSession()
        .play("DELETE", f"{TPU_API}/{QR}", op())
        .play("GET", f"{TPU_API}/{QR}", qr("ACTIVE"))
        .play("GET", f"{TPU_API}/{OP}", op(done=True, error={"code": 9, "message": "node busy"}))
    )
    with pytest.raises(QueuedResourceError, match=r"deleting .* failed: code 9: node busy"):
        provider(session).delete(QR, _props())


def test_a_delete_that_never_empties_is_an_error_within_the_bound():
    session = (
        FakeSession()
        .play("DELETE", f"{TPU_API}/{QR}", op(done=True))
        .play("GET", f"{TPU_API}/{QR}", qr("ACTIVE"), qr("DELETING"))
    )
    clock = Clock()
    with pytest.raises(QueuedResourceError, match="still exists"):
        provider(session, clock).delete(QR, _props())
    assert clock.now <= DELETE_TIMEOUT + 60


def test_any_change_replaces_and_a_missing_resource_deletes_cleanly():
    session = FakeSession(FakeResponse(404))
    p = provider(session)
    old, new = _props(), _props()
    new["body"]["tpu"]["nodeSpec"][0]["node"]["runtimeVersion"] = "v2-alpha-tpuv6e"
    diff = p.diff("id", old, new)
    assert diff.changes and diff.replaces == ["body"] and diff.delete_before_replace
    assert not p.diff("id", old, _props()).changes
    p.delete("projects/p/locations/z/queuedResources/q", old)  # 404: already gone, fine
    assert [c[0] for c in session.calls] == ["GET"]


def test_read_reports_a_missing_resource_as_gone_and_a_failed_one_with_its_reason():
    session = FakeSession(FakeResponse(404))
    assert provider(session).read("projects/p/locations/z/queuedResources/q", {}).id is None
    session.response = FakeResponse(200, {"state": {"state": "WAITING_FOR_RESOURCES"}})
    assert provider(session).read("x", {"a": 1}).outs == {"a": 1, "state": "WAITING_FOR_RESOURCES", "stateReason": ""}
    session.response = FakeResponse(
        200, {"state": {"state": "FAILED", "failedData": {"error": {"code": 8, "message": "no capacity"}}}}
    )
    assert provider(session).read("x", {}).outs["stateReason"] == "code 8: no capacity"


def test_the_provider_pickles_for_the_dynamic_provider_process():
    import pickle

    assert pickle.loads(pickle.dumps(QueuedResourceProvider()))._session_factory is None


def test_reserved_capacity_is_the_nodes_scheduling_config_in_v2():
    spec = load_spec(STACKS / "batch.yaml").spec
    plan = plan_tpu(spec, "batch", "batch")
    reserved = plan.__class__(**{**plan.__dict__, "provisioning": "reserved"})
    body = queued_resource_body(reserved, "n", network="n", subnetwork="s", service_account="sa")
    # QueuedResource.Guaranteed in v2 has only minDuration; `reserved` there is v2alpha1's.
    assert "guaranteed" not in body and "spot" not in body
    assert body["tpu"]["nodeSpec"][0]["node"]["schedulingConfig"] == {"reserved": True}


def test_a_slice_recorded_as_failed_or_suspended_is_replaced_by_the_next_up():
    p = provider(FakeSession())
    for state in ("FAILED", "SUSPENDING", "SUSPENDED"):
        diff = p.diff("id", {**_props(), "state": state}, _props())
        assert diff.changes and diff.replaces == ["state"] and diff.delete_before_replace, state
    for state in ("WAITING_FOR_RESOURCES", "PROVISIONING", "ACTIVE"):
        assert not p.diff("id", {**_props(), "state": state}, _props()).changes, state


def test_409_on_our_own_suspended_slice_force_deletes_it_waits_and_creates_again():
    session = (
        FakeSession()
        .play("POST", COLLECTION, FakeResponse(409), op(done=True))
        .play("DELETE", f"{TPU_API}/{QR}", op(done=True))
        .play(
            "GET",
            f"{TPU_API}/{QR}",
            qr("SUSPENDED"),
            qr("SUSPENDED"),
            qr("DELETING"),
            FakeResponse(404),
            qr("ACCEPTED"),
        )
    )
    result = provider(session).create(_props())
    methods = [c[0] for c in session.calls]
    assert methods.count("POST") == 2 and methods.count("DELETE") == 1
    delete = next(c for c in session.calls if c[0] == "DELETE")
    assert delete[2]["params"]["force"] == "true"
    # the new POST comes only after the old slice read 404
    assert session.calls.index(delete) < len(session.calls) - 2 and result.outs["state"] == "ACCEPTED"


def test_the_body_hash_is_a_valid_label_and_changes_with_anything_in_the_body():
    body = _props()["body"]
    digest = body_hash(body)
    assert len(digest) == 16 and set(digest) <= set("0123456789abcdef")  # label value: <= 63 of [a-z0-9_-]
    assert body_hash(stamped(body)) == digest  # the label does not hash itself
    assert stamped(body)["tpu"]["nodeSpec"][0]["node"]["labels"][BODY_LABEL] == digest
    for change in (
        lambda b: b["tpu"]["nodeSpec"][0]["node"]["metadata"].update({"startup-script": "echo old"}),
        lambda b: b["tpu"]["nodeSpec"][0]["node"]["serviceAccount"].update({"email": "old@x"}),
        lambda b: b["tpu"]["nodeSpec"][0]["node"]["networkConfig"].update({"network": "old"}),
        lambda b: b.pop("spot"),
    ):
        other = _props()["body"]
        change(other)
        assert body_hash(other) != digest


def test_create_sends_the_hash_label_and_409_refuses_a_leftover_from_an_older_body():
    session = FakeSession().play("POST", COLLECTION, op(done=True)).play("GET", f"{TPU_API}/{QR}", qr("ACCEPTED"))
    provider(session).create(_props())
    sent = session.calls[0][2]["json"]["tpu"]["nodeSpec"][0]["node"]["labels"]
    assert sent[BODY_LABEL] == body_hash(_props()["body"])

    old = _props()["body"]
    old["tpu"]["nodeSpec"][0]["node"]["metadata"]["startup-script"] = "#!/bin/bash\necho old"
    session = (
        FakeSession().play("POST", COLLECTION, FakeResponse(409)).play("GET", f"{TPU_API}/{QR}", qr("ACTIVE", body=old))
    )
    with pytest.raises(QueuedResourceError, match=f"{QR} already exists.*inferstack-body.*delete"):
        provider(session).create(_props())
    assert [c[0] for c in session.calls] == ["POST", "GET"]  # nothing deleted that is not provably ours


def test_delete_of_a_slice_already_deleting_only_waits_for_it_to_go():
    session = FakeSession().play("GET", f"{TPU_API}/{QR}", qr("DELETING"), qr("DELETING"), FakeResponse(404))
    provider(session).delete(QR, _props())
    assert [c[0] for c in session.calls] == ["GET", "GET", "GET"]


def test_dropped_connections_and_timeouts_are_retried_with_the_same_request_id_and_bounded():
    session = (
        FakeSession()
        .play("POST", COLLECTION, requests.ConnectionError("reset"), requests.Timeout("slow"), op(done=True))
        .play("GET", f"{TPU_API}/{QR}", qr("ACCEPTED"))
    )
    provider(session).create(_props())
    posts = [c[2]["params"]["requestId"] for c in session.calls if c[0] == "POST"]
    assert len(posts) == 3 and len(set(posts)) == 1

    session = FakeSession().play("POST", COLLECTION, requests.ConnectionError("reset"))
    with pytest.raises(QueuedResourceError, match="no answer after"):
        provider(session).create(_props())
    assert len(session.calls) == HTTP_ATTEMPTS
