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
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable

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
# States in which a queued resource will never serve without someone acting on it.
BROKEN_STATES = ("FAILED", "SUSPENDED", "SUSPENDING")


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


def same_slice(existing: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether a queued resource found under our name is the one this body asks for: the same
    labels (stack, environment, team, model: ours and no one else's) and the same shape."""
    mine, theirs = _node(body), _node(existing)
    return all(mine.get(k) == theirs.get(k) for k in ("labels", "acceleratorType", "runtimeVersion"))


class QueuedResourceProvider(ResourceProvider):
    def __init__(self, session_factory=None, sleep: Callable[[float], None] | None = None,
                 clock: Callable[[], float] | None = None):
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
        delay = FIRST_DELAY
        for attempt in range(HTTP_ATTEMPTS):
            response = getattr(session, method)(url, timeout=60, **kw)
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
            except Exception:  # noqa: BLE001 - a non-JSON error body
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
        response = self._call(
            session, "post", f"{TPU_API}/{self._parent(props)}/queuedResources",
            params={"queuedResourceId": props["queuedResourceId"], "requestId": str(uuid.uuid4())},
            json=props["body"],
        )
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

    def _adopt_or_retry(self, session, id_: str, props: dict[str, Any]):
        """409: a queued resource of this name exists. One that is being deleted is waited out
        and created again; one of ours with the same shape is adopted (None); anything else is
        an error that says what to do."""
        existing = self._get(session, id_)
        if existing is None or state_of(existing)[0] == "DELETING":
            self._wait_gone(session, id_, DELETE_TIMEOUT)
            return self._call(
                session, "post", f"{TPU_API}/{self._parent(props)}/queuedResources",
                params={"queuedResourceId": props["queuedResourceId"], "requestId": str(uuid.uuid4())},
                json=props["body"],
            )
        if same_slice(existing, props["body"]):
            return None
        raise QueuedResourceError(
            f"{id_} already exists and is not this stack's slice (other labels or shape): rename the "
            "target, or delete that queued resource if it is a leftover"
        )

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
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=True)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        session = self._http()
        response = self._call(session, "delete", f"{TPU_API}/{id_}",
                              params={"force": "true", "requestId": str(uuid.uuid4())})
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
