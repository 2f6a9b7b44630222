"""TpuQueuedResource: a Cloud TPU queued resource, as a Pulumi dynamic resource.

Why dynamic: pulumi-gcp's `tpu.V2QueuedResource` (10.2) has no service account, metadata,
labels, spot or guaranteed fields in its node spec, so a queued slice made with it would run as
the default service account with no startup script. The Cloud TPU API has all of them; this
provider sends the whole QueuedResource (built by `planning.gcp.queued_resource_body`) to it.
Any change replaces the queued resource: the API has no update.

Create and delete return long-running operations (Cloud TPU REST v2,
projects.locations.queuedResources.create/delete: "the response body contains ... Operation").
The provider polls each operation to `done` with a bounded backoff and raises its `error`; after
a delete it also waits until the queued resource reads 404, so a replace does not re-create into
a 409 and a destroy does not remove the subnet under nodes that still use it. Every mutating call
carries a `requestId` (the API's "idempotent request UUID"), kept across retries of the same call.

Create does not wait for ACTIVE: a queued resource may wait for capacity for hours, which is the
point of queueing. It waits until the API has accepted the request, then reports the state; a
queued resource that is FAILED or SUSPENDED at that point is an error with the API's reason.

Repair: a preempted Spot slice goes SUSPENDING then SUSPENDED and is "no longer eligible for
further allocation"; a FAILED one "remains in the queue until it's explicitly deleted" (Cloud TPU,
Manage queued resources, the state list). `read` records the state, and `diff` replaces a slice
whose recorded state is one of those, so `pulumi refresh` followed by `pulumi up` (or a scheduled
`pulumi up --refresh`) deletes the dead slice and queues a new one: that is how a Spot slice comes
back after preemption. A create that meets our own dead slice under its name (409) force-deletes
it, waits until it is gone and creates again.

Adoption: the body's hash is a node label (`inferstack-body`), so a queued resource found under
our name is adopted only if it was created from exactly this body; one with an older startup
script, service account, network or tier is an error that names it, never silently kept.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider

TPU_API = "https://tpu.googleapis.com/v2"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REPLACE_ON = ("project", "zone", "queuedResourceId", "body")

# Bounds of the waits. Create's operation ends when the request is accepted into the queue (a
# few minutes at most); a delete of a multi-host slice tears down every host first.
CREATE_TIMEOUT = 20 * 60
DELETE_TIMEOUT = 45 * 60
FIRST_DELAY, MAX_DELAY, GROWTH = 2.0, 30.0, 1.5
TRANSIENT = (429, 500, 502, 503, 504)
HTTP_ATTEMPTS = 5
# States in which a queued resource will never serve without someone acting on it (the doc's
# state list: FAILED stays until deleted; SUSPENDING ends in SUSPENDED, which is never allocated
# again). A recorded broken state makes `diff` replace the slice.
BROKEN_STATES = ("FAILED", "SUSPENDED", "SUSPENDING")
# The node label carrying the body's hash: label values are at most 63 characters of
# [a-z0-9_-] (Cloud labels), and 16 hex characters of a sha256 are plenty to tell bodies apart.
BODY_LABEL = "inferstack-body"


class QueuedResourceError(RuntimeError):
    """The TPU API refused, failed or did not finish something; the message says which and why."""


def _session():
    """An authorised HTTP session from Application Default Credentials (imported lazily: only
    `pulumi up` needs them)."""
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=[SCOPE])
    return AuthorizedSession(credentials)


def _status_text(status: dict[str, Any] | None) -> str:
    """A google.rpc.Status as one line: code and message."""
    if not status:
        return "no reason given"
    return f"code {status.get('code', '?')}: {status.get('message', 'no message')}"


def state_of(resource: dict[str, Any]) -> tuple[str, str]:
    """The queued resource's state and, for a failed one, the API's reason."""
    state = resource.get("state", {}) or {}
    name = state.get("state", "STATE_UNSPECIFIED")
    reason = ""
    if name == "FAILED":
        reason = _status_text((state.get("failedData") or {}).get("error"))
    elif name in ("SUSPENDED", "SUSPENDING"):
        reason = f"suspended by {state.get('stateInitiator', 'STATE_INITIATOR_UNSPECIFIED')}"
    return name, reason


def _node(body: dict[str, Any]) -> dict[str, Any]:
    specs = (body.get("tpu") or {}).get("nodeSpec") or [{}]
    return specs[0].get("node") or {}


def body_hash(body: dict[str, Any]) -> str:
    """The first 16 hex characters of the sha256 of the body's canonical JSON, without the hash
    label itself (so stamping a body does not change its hash)."""
    unstamped = json.loads(json.dumps(body))
    for spec in (unstamped.get("tpu") or {}).get("nodeSpec") or []:
        (spec.get("node") or {}).get("labels", {}).pop(BODY_LABEL, None)
    canonical = json.dumps(unstamped, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def stamped(body: dict[str, Any]) -> dict[str, Any]:
    """The body as sent: every node carries the body's hash as a label."""
    digest, out = body_hash(body), json.loads(json.dumps(body))
    for spec in (out.get("tpu") or {}).get("nodeSpec") or []:
        node = spec.setdefault("node", {})
        node["labels"] = {**(node.get("labels") or {}), BODY_LABEL: digest}
    return out


def same_slice(existing: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether a queued resource found under our name was created from exactly this body: its
    node's hash label equals this body's hash. Labels, shape, startup script, service account,
    network and tier all count; the API's output-only fields do not."""
    return (_node(existing).get("labels") or {}).get(BODY_LABEL) == body_hash(body)


class QueuedResourceProvider(ResourceProvider):
    def __init__(
        self,
        session_factory=None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
    ):
        self._session_factory = session_factory
        self._sleep = sleep
        self._clock = clock

    # -- plumbing -----------------------------------------------------------------------------

    def _http(self):
        return (self._session_factory or _session)()

    def _wait(self, seconds: float) -> None:
        (self._sleep or time.sleep)(seconds)

    def _now(self) -> float:
        return (self._clock or time.monotonic)()

    @staticmethod
    def _parent(props: dict[str, Any]) -> str:
        return f"projects/{props['project']}/locations/{props['zone']}"

    def _call(self, session, method: str, url: str, **kw):
        """One request, retried on throttling and server errors with the same arguments (the
        same requestId included, so the API runs a retried mutation once)."""
        import requests

        delay = FIRST_DELAY
        for attempt in range(HTTP_ATTEMPTS):
            try:
                response = getattr(session, method)(url, timeout=60, **kw)
            except (requests.ConnectionError, requests.Timeout) as error:
                # A dropped connection or a timeout may have reached the API: the retry carries
                # the same requestId, so a mutation that did land is not run twice.
                if attempt == HTTP_ATTEMPTS - 1:
                    raise QueuedResourceError(
                        f"{method.upper()} {url}: no answer after {HTTP_ATTEMPTS} attempts ({error})"
                    ) from error
                self._wait(delay)
                delay = min(delay * GROWTH, MAX_DELAY)
                continue
            if response.status_code not in TRANSIENT or attempt == HTTP_ATTEMPTS - 1:
                return response
            self._wait(delay)
            delay = min(delay * GROWTH, MAX_DELAY)
        return response  # pragma: no cover - the loop always returns

    @staticmethod
    def _raise(response, what: str) -> None:
        if response.status_code >= 400:
            try:
                detail = _status_text(response.json().get("error"))
            except Exception:
                detail = f"HTTP {response.status_code}"
            raise QueuedResourceError(f"{what}: HTTP {response.status_code}, {detail}")

    def _poll(self, session, operation: dict[str, Any], what: str, timeout: float) -> dict[str, Any]:
        """Poll a long-running operation until done; its error, or running out of time, raises."""
        deadline, delay = self._now() + timeout, FIRST_DELAY
        while not operation.get("done"):
            if self._now() >= deadline:
                raise QueuedResourceError(
                    f"{what}: operation {operation.get('name')} not done after {int(timeout)}s; "
                    "check it with `gcloud compute tpus queued-resources describe` before retrying"
                )
            self._wait(delay)
            delay = min(delay * GROWTH, MAX_DELAY)
            response = self._call(session, "get", f"{TPU_API}/{operation['name']}")
            self._raise(response, f"{what}: reading operation {operation.get('name')}")
            operation = response.json()
        if operation.get("error"):
            raise QueuedResourceError(f"{what} failed: {_status_text(operation['error'])}")
        return operation

    def _get(self, session, id_: str) -> dict[str, Any] | None:
        response = self._call(session, "get", f"{TPU_API}/{id_}")
        if response.status_code == 404:
            return None
        self._raise(response, f"reading {id_}")
        return response.json()

    def _wait_gone(self, session, id_: str, timeout: float) -> None:
        deadline, delay = self._now() + timeout, FIRST_DELAY
        while self._get(session, id_) is not None:
            if self._now() >= deadline:
                raise QueuedResourceError(f"{id_} still exists {int(timeout)}s after its delete finished")
            self._wait(delay)
            delay = min(delay * GROWTH, MAX_DELAY)

    def _check_state(self, id_: str, resource: dict[str, Any]) -> str:
        state, reason = state_of(resource)
        if state in BROKEN_STATES:
            raise QueuedResourceError(
                f"{id_} is {state} ({reason}); it will not serve. Delete it "
                f"(`gcloud compute tpus queued-resources delete --force`) and run `pulumi up` again"
            )
        return state

    # -- the provider -------------------------------------------------------------------------

    def create(self, props: dict[str, Any]) -> CreateResult:
        session = self._http()
        id_ = f"{self._parent(props)}/queuedResources/{props['queuedResourceId']}"
        what = f"creating {id_}"
        response = self._post(session, props)
        if response.status_code == 409:
            response = self._adopt_or_retry(session, id_, props)
            if response is None:  # adopted: an earlier run created it and lost track
                existing = self._get(session, id_) or {}
                return CreateResult(id_, outs={**props, "state": self._check_state(id_, existing), "stateReason": ""})
        self._raise(response, what)
        self._poll(session, response.json(), what, CREATE_TIMEOUT)
        created = self._get(session, id_)
        if created is None:
            raise QueuedResourceError(f"{what}: the operation finished but the queued resource is not there")
        return CreateResult(id_, outs={**props, "state": self._check_state(id_, created), "stateReason": ""})

    def _post(self, session, props: dict[str, Any]):
        return self._call(
            session,
            "post",
            f"{TPU_API}/{self._parent(props)}/queuedResources",
            params={"queuedResourceId": props["queuedResourceId"], "requestId": str(uuid.uuid4())},
            json=stamped(props["body"]),
        )

    def _adopt_or_retry(self, session, id_: str, props: dict[str, Any]):
        """409: a queued resource of this name exists. One that is being deleted is waited out
        and created again; ours (same body hash) in a broken state is force-deleted, waited out
        and created again; ours otherwise is adopted (None); anything else is an error that says
        what to do."""
        existing = self._get(session, id_)
        state = state_of(existing)[0] if existing is not None else "DELETING"  # gone meanwhile
        ours = existing is not None and same_slice(existing, props["body"])
        if state != "DELETING" and not ours:
            raise QueuedResourceError(
                f"{id_} already exists but was not created from this stack's current request "
                f"(its `{BODY_LABEL}` label differs: other labels, shape, startup script, service "
                "account, network or tier): delete that queued resource "
                "(`gcloud compute tpus queued-resources delete --force`) if it is a leftover, or "
                "rename the target"
            )
        if state not in BROKEN_STATES and state != "DELETING":
            return None  # ours and alive: an earlier run created it and lost track
        self.delete(id_, props)  # DELETING, gone meanwhile, or our dead slice: all end at a 404
        return self._post(session, props)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        found = self._get(self._http(), id_)
        if found is None:
            return ReadResult(None, {})
        # A refresh reports a FAILED or SUSPENDED slice with its reason, in the stack's outputs
        # (the provider runs in its own process, without the engine's log).
        state, reason = state_of(found)
        return ReadResult(id_, {**props, "state": state, "stateReason": reason})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in REPLACE_ON if olds.get(k) != news.get(k)]
        # A slice recorded (by create or a refresh) as FAILED or SUSPENDED will never serve again:
        # replacing it is the only repair, and `pulumi up` after a refresh does it.
        if olds.get("state") in BROKEN_STATES:
            changed.append("state")
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=True)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        session = self._http()
        existing = self._get(session, id_)
        if existing is None:
            return
        if state_of(existing)[0] == "DELETING":
            # An interrupted destroy left the delete running: a second delete would be refused,
            # waiting for the 404 finishes it.
            self._wait_gone(session, id_, DELETE_TIMEOUT)
            return
        response = self._call(
            session, "delete", f"{TPU_API}/{id_}", params={"force": "true", "requestId": str(uuid.uuid4())}
        )
        if response.status_code == 404:
            return
        self._raise(response, f"deleting {id_}")
        self._poll(session, response.json(), f"deleting {id_}", DELETE_TIMEOUT)
        # The operation can finish while the nodes are still being torn down; the subnet and the
        # service account they use must outlive them, and a replace must not meet a 409.
        self._wait_gone(session, id_, DELETE_TIMEOUT)


class TpuQueuedResource(Resource):
    """Inputs: project, zone, queuedResourceId, resourceType (for the policy pack) and body."""

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        # state and stateReason are outputs: what the TPU API last reported, and why if FAILED.
        super().__init__(QueuedResourceProvider(), name, {"state": None, "stateReason": None, **props}, opts)
