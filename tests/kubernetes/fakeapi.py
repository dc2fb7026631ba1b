"""A small, stateful fake of the Kubernetes API server, for the executor's tests.

It serves over real HTTP exactly the endpoints `runs.executors.kubernetes.cluster` calls, so
the official client is exercised as it would be against a cluster: create (with strict field
validation), get, list by label selector, watch (chunked, with timeouts, bookmarks and 410 Gone
for a compacted resourceVersion), delete (with propagation policies and owner-reference garbage
collection), and pod logs.

It also plays the two controllers the tests need, as Python methods rather than HTTP: the Job
controller (a pod per Job, Job conditions from pod outcomes and the pod failure policy) and
the kubelet (moving a pod through pending, waiting reasons, running, terminated, evicted, or
running the container's command as a local process). With `start_pods`, the kubelet runs
every new attempt pod by itself after a pod start delay, as a cluster does.
"""

import base64
import copy
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate

_PATH = re.compile(
    r"^/(?P<group>api/v1|apis/batch/v1)/namespaces/(?P<namespace>[^/]+)/"
    r"(?P<resource>jobs|pods|secrets|configmaps)(?:/(?P<name>[^/]+))?(?P<log>/log)?$"
)
_GROUPS = {"jobs": "apis/batch/v1", "pods": "api/v1", "secrets": "api/v1", "configmaps": "api/v1"}
_KINDS = {"jobs": "Job", "pods": "Pod", "secrets": "Secret", "configmaps": "ConfigMap"}
_API_VERSIONS = {"jobs": "batch/v1", "pods": "v1", "secrets": "v1", "configmaps": "v1"}
_QUALIFIED = {
    "jobs": "jobs.batch",
    "pods": "pods",
    "secrets": "secrets",
    "configmaps": "configmaps",
}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
VALIDATION_VERSION = "1.37"
NODE_SHUTDOWN_MESSAGE = "Pod was terminated in response to imminent node shutdown."


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _matches(labels: dict, selector: str | None) -> bool:
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term not in labels:
            return False
    return True


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: dict | None
    authorization: str | None = None


class _Reply(Exception):
    def __init__(self, code: int, body: dict) -> None:
        self.code, self.body = code, body


class FakeKubernetes:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._rv = 0
        self._objects: dict[tuple[str, str, str], dict] = {}
        self._history: list[tuple[int, str, str, str, dict]] = []  # rv, resource, ns, type, obj
        self._pod_suffixes = itertools.count(1)
        self.compacted_rv = 0  # watches from an older resourceVersion get 410 Gone
        self.gone_as_http_status = False  # answer such watches 410 itself, not in an event
        self.refuse_pods = False  # as if a ResourceQuota refused every pod a Job controller makes
        self.forbidden: set[str] = set()  # resources whose create answers 403, as RBAC would
        self.unavailable = False  # every request answers 503, as during an API server restart
        self.stall_watches = False  # open watches drop their events, as a dead connection would
        self.requests: list[Request] = []
        self.logs: dict[str, str] = {}  # pod name -> log text
        self._kubelet: dict | None = None  # set by start_pods
        self._timers: list[threading.Timer] = []
        self._processes: dict[str, subprocess.Popen] = {}  # pod name -> its container
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def resource_version(self) -> int:
        """The newest resourceVersion: every change so far is at or before it."""
        with self._cond:
            return self._rv

    def start(self) -> "FakeKubernetes":
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._kubelet = None
            timers, self._timers = self._timers, []
            processes = list(self._processes.values())
        for timer in timers:
            timer.cancel()
        for process in processes:
            if process.poll() is None:
                process.kill()
        self._server.shutdown()
        self._server.server_close()

    # -- storage -------------------------------------------------------------------------

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _record(self, resource: str, namespace: str, kind: str, obj: dict) -> None:
        self._history.append((self._rv, resource, namespace, kind, copy.deepcopy(obj)))
        self._cond.notify_all()

    def _put(self, resource: str, obj: dict, event: str) -> dict:
        meta = obj["metadata"]
        meta["resourceVersion"] = self._next_rv()
        self._objects[(resource, meta["namespace"], meta["name"])] = obj
        self._record(resource, meta["namespace"], event, obj)
        return obj

    def _remove(self, resource: str, namespace: str, name: str) -> dict:
        obj = self._objects.pop((resource, namespace, name))
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._record(resource, namespace, "DELETED", obj)
        process = self._processes.get(name) if resource == "pods" else None
        if process is not None and process.poll() is None:
            process.terminate()  # a deleted pod's container gets SIGTERM, as from a kubelet
        return obj

    def get(self, resource: str, namespace: str, name: str) -> dict | None:
        with self._cond:
            obj = self._objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def objects(self, resource: str) -> list[dict]:
        with self._cond:
            return [copy.deepcopy(o) for (r, _, _), o in self._objects.items() if r == resource]

    # -- HTTP ----------------------------------------------------------------------------

    def _handle(self, handler: "_Handler", method: str) -> None:
        url = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length)) if length else None
        self.requests.append(
            Request(method, url.path, query, body, handler.headers.get("Authorization"))
        )
        match = _PATH.match(url.path)
        try:
            if self.unavailable:
                raise _Reply(
                    503, _status(503, "ServiceUnavailable", "the API server is restarting")
                )
            if not match or _GROUPS[match["resource"]] != match["group"]:
                raise _Reply(404, _status(404, "NotFound", f"no route for {url.path}"))
            resource, namespace, name = match["resource"], match["namespace"], match["name"]
            if method == "POST" and not name:
                handler.send_json(201, self._create(resource, namespace, body, query))
            elif method == "GET" and name and match["log"]:
                handler.send_text(200, self._log(namespace, name, query))
            elif method == "GET" and name:
                handler.send_json(200, self._read(resource, namespace, name))
            elif method == "GET" and query.get("watch") in ("true", "1"):
                self._watch(handler, resource, namespace, query)
            elif method == "GET":
                handler.send_json(200, self._list(resource, namespace, query))
            elif method == "DELETE" and name:
                handler.send_json(200, self._delete(resource, namespace, name, query, body))
            else:
                raise _Reply(405, _status(405, "MethodNotAllowed", f"{method} {url.path}"))
        except _Reply as reply:
            handler.send_json(reply.code, reply.body)

    def _create(self, resource: str, namespace: str, body: dict, query: dict) -> dict:
        if resource in self.forbidden:
            message = f'{resource} is forbidden: cannot create resource "{resource}"'
            raise _Reply(403, _status(403, "Forbidden", message))
        if query.get("fieldValidation") == "Strict":
            try:
                kubernetes_validate.validate(body, VALIDATION_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                raise _Reply(
                    400, _status(400, "BadRequest", f"strict decoding error: {path}: {exc.message}")
                ) from None
        name = body["metadata"].get("name", "")
        pattern = _DNS_LABEL if resource in ("jobs", "pods") else _DNS_SUBDOMAIN
        if body.get("kind") != _KINDS[resource] or not pattern.match(name) or len(name) > 63:
            raise _Reply(422, _status(422, "Invalid", f"{_KINDS[resource]} {name!r} is invalid"))
        with self._cond:
            if (resource, namespace, name) in self._objects:
                raise _Reply(
                    409,
                    _status(
                        409, "AlreadyExists", f'{_QUALIFIED[resource]} "{name}" already exists'
                    ),
                )
            obj = copy.deepcopy(body)
            meta = obj["metadata"]
            meta.update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=_now())
            if resource == "secrets" and "stringData" in obj:
                data = obj.setdefault("data", {})
                for key, value in obj.pop("stringData").items():
                    data[key] = base64.b64encode(value.encode()).decode()
            if resource == "jobs":
                meta["generation"] = 1
                obj["status"] = {}
                self._put(resource, obj, "ADDED")
                if not self.refuse_pods:
                    pod = self._start_pod(obj)
                    obj["status"] = {"startTime": _now(), "active": 1}
                    self._put(resource, obj, "MODIFIED")
                    self._kubelet_takes(obj, pod)
            else:
                self._put(resource, obj, "ADDED")
            return copy.deepcopy(obj)

    def _read(self, resource: str, namespace: str, name: str) -> dict:
        obj = self.get(resource, namespace, name)
        if obj is None:
            raise _Reply(
                404, _status(404, "NotFound", f'{_QUALIFIED[resource]} "{name}" not found')
            )
        return obj

    def _list(self, resource: str, namespace: str, query: dict) -> dict:
        selector = query.get("labelSelector")
        with self._cond:
            items = [
                copy.deepcopy(obj)
                for (r, ns, _), obj in sorted(self._objects.items())
                if r == resource
                and ns == namespace
                and _matches(obj["metadata"].get("labels") or {}, selector)
            ]
            return {
                "kind": f"{_KINDS[resource]}List",
                "apiVersion": _API_VERSIONS[resource],
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }

    def _watch(self, handler: "_Handler", resource: str, namespace: str, query: dict) -> None:
        since = int(query.get("resourceVersion") or self._rv)
        if since < self.compacted_rv:
            message = f"too old resource version: {since} ({self.compacted_rv})"
            if self.gone_as_http_status:
                raise _Reply(410, _status(410, "Expired", message))
            handler.start_stream()
            handler.send_chunk({"type": "ERROR", "object": _status(410, "Expired", message)})
            handler.end_stream()
            return
        selector = query.get("labelSelector")
        deadline = time.monotonic() + int(query.get("timeoutSeconds") or 30)
        handler.start_stream()
        next_index, dead = 0, False
        while True:
            with self._cond:
                while next_index == len(self._history) and time.monotonic() < deadline:
                    self._cond.wait(max(0.0, deadline - time.monotonic()))
                # A stalled connection is dead for good: it sends nothing more, not even the
                # closing bookmark, so the client resumes from the last event it did get.
                dead = dead or self.stall_watches
                pending = [] if dead else self._history[next_index:]
                next_index = len(self._history)
                current = self._rv
            for rv, res, ns, kind, obj in pending:
                labels = obj["metadata"].get("labels") or {}
                if (
                    rv > since
                    and res == resource
                    and ns == namespace
                    and _matches(labels, selector)
                ):
                    handler.send_chunk({"type": kind, "object": obj})
            if time.monotonic() >= deadline:
                break
        if query.get("allowWatchBookmarks") in ("true", "1") and not dead:
            bookmark = {
                "kind": _KINDS[resource],
                "apiVersion": _API_VERSIONS[resource],
                "metadata": {"resourceVersion": str(current)},
            }
            handler.send_chunk({"type": "BOOKMARK", "object": bookmark})
        handler.end_stream()

    def _delete(self, resource: str, namespace: str, name: str, query: dict, body) -> dict:
        policy = query.get("propagationPolicy") or (body or {}).get("propagationPolicy")
        with self._cond:
            obj = self._objects.get((resource, namespace, name))
            if obj is None:
                raise _Reply(
                    404, _status(404, "NotFound", f'{_QUALIFIED[resource]} "{name}" not found')
                )
            self._remove(resource, namespace, name)
            self._collect(obj["metadata"]["uid"], orphan=policy not in ("Background", "Foreground"))
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}

    def _collect(self, owner_uid: str, *, orphan: bool) -> None:
        """The garbage collector. batch/v1 Jobs deleted without a policy orphan their pods."""
        for (resource, namespace, name), obj in list(self._objects.items()):
            refs = obj["metadata"].get("ownerReferences") or []
            if not any(ref["uid"] == owner_uid for ref in refs):
                continue
            if orphan:
                obj["metadata"]["ownerReferences"] = [r for r in refs if r["uid"] != owner_uid]
                self._put(resource, obj, "MODIFIED")
            else:
                self._remove(resource, namespace, name)

    def _log(self, namespace: str, name: str, query: dict) -> str:
        pod = self._read("pods", namespace, name)
        statuses = pod["status"].get("containerStatuses") or []
        for status in statuses:
            if "waiting" in status["state"]:
                reason = status["state"]["waiting"].get("reason", "")
                raise _Reply(
                    400,
                    _status(
                        400,
                        "BadRequest",
                        f'container "{status["name"]}" in pod "{name}" is waiting to start: '
                        f"{reason}",
                    ),
                )
        if not statuses:
            raise _Reply(400, _status(400, "BadRequest", f'pod "{name}" has no running container'))
        # A container's own log if a test set one; else the pod's log is its first container's
        # (a build's is BuildKit's, an init container), and the others have none.
        container = query.get("container")
        first = ((pod["spec"].get("initContainers") or []) + pod["spec"]["containers"])[0]
        if container and f"{name}/{container}" in self.logs:
            text = self.logs[f"{name}/{container}"]
        elif not container or container == first["name"]:
            text = self.logs.get(name, "")
        else:
            text = ""
        lines = text.splitlines(keepends=True)
        if query.get("tailLines"):
            lines = lines[-int(query["tailLines"]) :]
        return "".join(lines)

    # -- the Job controller ----------------------------------------------------------------

    def _start_pod(self, job: dict) -> None:
        meta = job["metadata"]
        uid, name = meta["uid"], meta["name"]
        template = job["spec"]["template"]
        labels = {
            **(template["metadata"].get("labels") or {}),
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-{next(self._pod_suffixes):05x}",
                "namespace": meta["namespace"],
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _now(),
                "labels": labels,
                "annotations": dict(template["metadata"].get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": name,
                        "uid": uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": copy.deepcopy(template["spec"]),
            "status": {"phase": "Pending", "conditions": []},
        }
        return self._put("pods", pod, "ADDED")

    # -- the kubelet on its own (start_pods) ---------------------------------------------

    def start_pods(self, *, python: str, env: dict[str, str], delay: float = 0.0) -> None:
        """From now on the kubelet starts every attempt pod by itself, as a cluster does: the
        pod is scheduled at once and stays Pending, its container waiting in
        ContainerCreating (a node to bring up, an image to pull), for `delay` seconds; then
        its command runs as `run_container` runs it (`python` and `env` as there). Build
        pods are left to the test, as are pods of Jobs made before this call."""
        with self._cond:
            self._kubelet = {"python": python, "env": dict(env), "delay": delay}

    def _kubelet_takes(self, job: dict, pod: dict) -> None:
        kubelet = self._kubelet
        labels = job["metadata"].get("labels") or {}
        if kubelet is None or labels.get("app.kubernetes.io/component") != "run":
            return
        name, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
        self.container_waiting(name, namespace, "ContainerCreating")
        pod_name = pod["metadata"]["name"]

        def start() -> None:
            with self._cond:
                if self._kubelet is None or ("pods", namespace, pod_name) not in self._objects:
                    return  # deleted while it waited (a cancel, a skipped slot)
                self.run_container(name, namespace, python=kubelet["python"], env=kubelet["env"])

        timer = threading.Timer(kubelet["delay"], start)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _job_finished(self, job: dict, conditions: list[tuple[str, str, str]], **counts) -> None:
        now = _now()
        job["status"] = {
            "startTime": job["status"].get("startTime", now),
            "active": 0,
            **counts,
            "conditions": [
                {
                    "type": kind,
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                }
                for kind, reason, message in conditions
            ],
        }
        if "succeeded" in counts:
            job["status"]["completionTime"] = now
        self._put("jobs", job, "MODIFIED")

    def _sync_job(self, job: dict, pod: dict) -> None:
        phase = pod["status"]["phase"]
        if phase == "Succeeded":
            done = "Job completed"
            self._job_finished(
                job,
                [("SuccessCriteriaMet", "CompletionsReached", done), ("Complete", "", "")],
                succeeded=1,
            )
        elif phase == "Failed":
            reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            rules = ((job["spec"].get("podFailurePolicy") or {}).get("rules")) or []
            for index, rule in enumerate(rules):
                for pattern in rule.get("onPodConditions") or []:
                    for condition in pod["status"].get("conditions") or []:
                        same = (condition["type"], condition["status"]) == (
                            pattern["type"],
                            pattern.get("status", "True"),
                        )
                        if same and rule["action"] == "FailJob":
                            pod_id = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
                            reason = "PodFailurePolicy"
                            message = (
                                f"Pod {pod_id} has condition {condition['type']} matching "
                                f"FailJob rule at index {index}"
                            )
            self._job_finished(
                job, [("FailureTarget", reason, message), ("Failed", reason, message)], failed=1
            )

    # -- what tests drive: the kubelet and the rest of the cluster ---------------------------

    def _pod(self, job_name: str, namespace: str) -> dict:
        pods = [
            p
            for (r, ns, _), p in self._objects.items()
            if r == "pods"
            and ns == namespace
            and p["metadata"]["labels"].get("batch.kubernetes.io/job-name") == job_name
        ]
        if not pods:
            raise AssertionError(f"the fake has no pod for Job {job_name}")
        return max(pods, key=lambda p: p["metadata"]["name"])

    def _update_pod(self, job_name: str, namespace: str, change) -> dict:
        with self._cond:
            pod = self._pod(job_name, namespace)
            change(pod)
            self._put("pods", pod, "MODIFIED")
            if pod["status"]["phase"] in ("Succeeded", "Failed"):
                job = self._objects.get(("jobs", namespace, job_name))
                if job is not None:
                    self._sync_job(job, pod)
            return copy.deepcopy(pod)

    @staticmethod
    def _condition(pod: dict, kind: str, status: str, reason: str = "", message: str = "") -> None:
        conditions = [c for c in pod["status"]["conditions"] if c["type"] != kind]
        conditions.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": _now(),
            }
        )
        pod["status"]["conditions"] = conditions

    @staticmethod
    def _containers(pod: dict, state: dict, *, ready: bool = False) -> None:
        pod["status"]["containerStatuses"] = [
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "ready": ready,
                "restartCount": 0,
                "started": "running" in state,
                "state": copy.deepcopy(state),
                "lastState": {},
            }
            for c in pod["spec"]["containers"]
        ]

    def _scheduled(self, pod: dict) -> None:
        if not any(
            c["type"] == "PodScheduled" and c["status"] == "True"
            for c in pod["status"]["conditions"]
        ):
            self._condition(pod, "PodScheduled", "True")
            pod["spec"]["nodeName"] = "node-1"

    def unschedulable(self, job_name: str, namespace: str, message: str) -> dict:
        return self._update_pod(
            job_name,
            namespace,
            lambda pod: self._condition(pod, "PodScheduled", "False", "Unschedulable", message),
        )

    def container_waiting(self, job_name: str, namespace: str, reason: str, message: str = ""):
        def change(pod):
            self._scheduled(pod)
            waiting = {"reason": reason}
            if message:
                waiting["message"] = message
            self._containers(pod, {"waiting": waiting})

        return self._update_pod(job_name, namespace, change)

    def container_running(self, job_name: str, namespace: str) -> dict:
        def change(pod):
            self._scheduled(pod)
            pod["status"]["phase"] = "Running"
            pod["status"]["startTime"] = _now()
            self._containers(pod, {"running": {"startedAt": _now()}}, ready=True)

        return self._update_pod(job_name, namespace, change)

    def _terminate(self, pod: dict, exit_code: int, reason: str, message: str | None) -> None:
        self._scheduled(pod)
        terminated = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": _now(),
            "finishedAt": _now(),
            "containerID": "containerd://0123456789abcdef",
        }
        if message:
            terminated["message"] = message
        self._containers(pod, {"terminated": terminated})

    def container_terminated(
        self,
        job_name: str,
        namespace: str,
        exit_code: int,
        reason: str | None = None,
        message: str | None = None,
    ) -> dict:
        def change(pod):
            self._terminate(
                pod, exit_code, reason or ("Completed" if exit_code == 0 else "Error"), message
            )
            pod["status"]["phase"] = "Succeeded" if exit_code == 0 else "Failed"

        return self._update_pod(job_name, namespace, change)

    def evict_for_node_pressure(self, job_name: str, namespace: str) -> dict:
        """The kubelet evicts the pod; the failed pod stays until its Job is deleted."""

        def change(pod):
            self._condition(
                pod,
                "DisruptionTarget",
                "True",
                "TerminationByKubelet",
                "The node was low on resource: memory.",
            )
            self._terminate(pod, 137, "Error", None)
            pod["status"].update(
                phase="Failed",
                reason="Evicted",
                message="The node was low on resource: memory. Threshold quantity: 100Mi.",
            )

        return self._update_pod(job_name, namespace, change)

    def shut_down_node(self, job_name: str, namespace: str) -> dict:
        def change(pod):
            self._condition(
                pod, "DisruptionTarget", "True", "TerminationByKubelet", NODE_SHUTDOWN_MESSAGE
            )
            self._terminate(pod, 143, "Error", None)
            pod["status"].update(phase="Failed", reason="Terminated", message=NODE_SHUTDOWN_MESSAGE)

        return self._update_pod(job_name, namespace, change)

    def preempt(self, job_name: str, namespace: str) -> None:
        """The scheduler preempts the pod: it fails with DisruptionTarget, and is deleted."""

        def change(pod):
            self._condition(
                pod,
                "DisruptionTarget",
                "True",
                "PreemptionByScheduler",
                "default-scheduler: preempting to accommodate a higher priority pod",
            )
            self._terminate(pod, 143, "Error", None)
            pod["status"]["phase"] = "Failed"

        pod = self._update_pod(job_name, namespace, change)
        with self._cond:
            self._remove("pods", namespace, pod["metadata"]["name"])

    def exceed_deadline(self, job_name: str, namespace: str) -> None:
        """The Job controller fails the Job past activeDeadlineSeconds and deletes its pods."""
        with self._cond:
            job = self._objects[("jobs", namespace, job_name)]
            message = "Job was active longer than specified deadline"
            self._job_finished(
                job,
                [
                    ("FailureTarget", "DeadlineExceeded", message),
                    ("Failed", "DeadlineExceeded", message),
                ],
                failed=1,
            )
            for (resource, ns, name), obj in list(self._objects.items()):
                if resource == "pods" and ns == namespace:
                    if obj["metadata"]["labels"].get("job-name") == job_name:
                        self._remove("pods", ns, name)

    def delete_by_hand(self, job_name: str, namespace: str) -> None:
        """Someone runs `kubectl delete job`: kubectl's default policy is Background."""
        with self._cond:
            job = self._remove("jobs", namespace, job_name)
            self._collect(job["metadata"]["uid"], orphan=False)

    def run_container(
        self, job_name: str, namespace: str, *, python: str, env: dict[str, str]
    ) -> subprocess.Popen | None:
        """The kubelet runs the pod's command as a local process. `python` stands in for the
        image's interpreter (it is the `python` first on PATH) and `env` for what the image
        sets (PATH, PYTHONPATH); the rest of the environment comes from the pod spec, with
        secretKeyRef values read from the Secrets stored here. The container gets a private
        directory, removed when it exits, as its working directory and its /tmp (TMPDIR), so
        neither the repository nor another container's files are in its way. A missing Secret
        leaves the container in CreateContainerConfigError, as a kubelet would, and returns
        None. When the process exits, the container terminates with its exit code and its
        output is the pod's log."""
        with self._cond:
            pod = self._pod(job_name, namespace)
            (container,) = pod["spec"]["containers"]
            resolved = {}
            for var in container.get("env") or []:
                if "value" in var:
                    resolved[var["name"]] = var["value"]
                    continue
                ref = var["valueFrom"]["secretKeyRef"]
                secret = self._objects.get(("secrets", namespace, ref["name"]))
                value = ((secret or {}).get("data") or {}).get(ref["key"])
                if value is None:
                    missing = f'secret "{ref["name"]}" not found'
                    self.container_waiting(
                        job_name, namespace, "CreateContainerConfigError", missing
                    )
                    return None
                resolved[var["name"]] = base64.b64decode(value).decode()
            self.container_running(job_name, namespace)
        root = Path(tempfile.mkdtemp(prefix="chalk-container-"))
        (root / "bin").mkdir()
        (root / "bin" / "python").symlink_to(python)
        (root / "tmp").mkdir()
        process = subprocess.Popen(
            container["command"],
            cwd=root,
            env={
                **resolved,
                **env,
                "PATH": f"{root / 'bin'}:{env['PATH']}",
                "TMPDIR": str(root / "tmp"),
            },
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        pod_name = pod["metadata"]["name"]
        with self._cond:
            self._processes[pod_name] = process

        def exited() -> None:
            output, _ = process.communicate()
            shutil.rmtree(root, ignore_errors=True)
            code = process.returncode if process.returncode >= 0 else 128 - process.returncode
            with self._cond:
                self.logs[pod_name] = output.decode("utf-8", "replace")
                if self._objects.get(("pods", namespace, pod_name)) is not None:
                    self.container_terminated(job_name, namespace, code)

        threading.Thread(target=exited, daemon=True).start()
        return process

    def set_log(
        self, job_name: str, namespace: str, text: str, container: str | None = None
    ) -> None:
        with self._cond:
            pod_name = self._pod(job_name, namespace)["metadata"]["name"]
            self.logs[f"{pod_name}/{container}" if container else pod_name] = text

    def compact(self) -> None:
        """Like etcd compaction: every resourceVersion before the current one becomes too old
        to watch from."""
        with self._cond:
            self.compacted_rv = self._rv

    def put_job(self, job: dict, namespace: str) -> dict:
        """Creates a Job as another client would, bypassing HTTP."""
        with self._cond:
            obj = copy.deepcopy(job)
            obj["metadata"].update(
                namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=_now()
            )
            obj["status"] = {}
            return copy.deepcopy(self._put("jobs", obj, "ADDED"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A client that stops a watch closes its socket mid-stream: not an error here.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked watch streams
    # Headers and body leave in one write, with no Nagle delay: otherwise every request on a
    # kept-alive connection waits out the client's delayed ACK (~40 ms).
    wbufsize = -1
    disable_nagle_algorithm = True
    fake: FakeKubernetes

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        self.fake._handle(self, "GET")

    def do_POST(self) -> None:
        self.fake._handle(self, "POST")

    def do_DELETE(self) -> None:
        self.fake._handle(self, "DELETE")

    def _send(self, code: int, content_type: str, payload: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def send_json(self, code: int, body: dict) -> None:
        self._send(code, "application/json", json.dumps(body).encode())

    def send_text(self, code: int, text: str) -> None:
        self._send(code, "text/plain", text.encode())

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def send_chunk(self, event: dict) -> None:
        line = json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
