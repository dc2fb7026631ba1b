"""What the API server checks beyond the OpenAPI schema, for manifests checked without one.

kubernetes-validate catches unknown fields and wrong types; the API server's validation code
also rejects bad names, label syntax and lengths, quantities it cannot parse, requests above
limits, a Job pod that may restart, and (through Pod Security admission) pods that break the
namespace's security level. These are the rules our manifests could break.
"""

import base64
import ipaddress
import re
from decimal import Decimal

from chalkcompute.quantities import InvalidQuantityError, parse_quantity

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_STANDARD_RESOURCES = {"cpu", "memory", "ephemeral-storage"}
_RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
MAX_ANNOTATIONS_BYTES = 256 * 1024
MAX_CONFIGMAP_BYTES = 1024 * 1024  # keys and values of data and binaryData (decoded), together


def _qualified_key_errors(key: str, where: str) -> list[str]:
    prefix, _, name = key.rpartition("/")
    errors = []
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        errors.append(f"{where}: key {key!r} has an invalid prefix")
    if len(name) > 63 or not _QUALIFIED_NAME.match(name):
        errors.append(f"{where}: key {key!r} is not a qualified name of at most 63 characters")
    return errors


def label_errors(labels: dict | None, where: str) -> list[str]:
    errors = []
    for key, value in (labels or {}).items():
        errors += _qualified_key_errors(key, where)
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            errors.append(f"{where}: label {key}={value!r} is not a valid label value (≤ 63)")
    return errors


def _annotation_errors(annotations: dict | None, where: str) -> list[str]:
    errors = []
    for key, value in (annotations or {}).items():
        errors += _qualified_key_errors(key, where)
        if not isinstance(value, str):
            errors.append(f"{where}: annotation {key} must be a string")
    size = sum(len(k) + len(str(v)) for k, v in (annotations or {}).items())
    if size > MAX_ANNOTATIONS_BYTES:
        errors.append(f"{where}: annotations take {size} bytes, over 256 KiB")
    return errors


def name_errors(name: str, where: str, *, dns_1035: bool = False) -> list[str]:
    pattern = _DNS_1035_LABEL if dns_1035 else _DNS_LABEL
    if not isinstance(name, str) or len(name) > 63 or not pattern.match(name):
        return [f"{where}: name {name!r} is not a DNS label of at most 63 characters"]
    return []


def _quantity(value: object, where: str, errors: list[str]) -> Decimal | None:
    try:
        return parse_quantity(str(value), where)
    except InvalidQuantityError as exc:
        errors.append(str(exc))
        return None


def _resource_errors(resources: dict | None, where: str) -> list[str]:
    errors: list[str] = []
    requests = (resources or {}).get("requests") or {}
    limits = (resources or {}).get("limits") or {}
    parsed = {}
    for kind, values in (("requests", requests), ("limits", limits)):
        for name, value in values.items():
            quantity = _quantity(value, f"{where} {kind}.{name}", errors)
            parsed[kind, name] = quantity
            if name not in _STANDARD_RESOURCES and quantity is not None:
                if quantity != quantity.to_integral_value():
                    errors.append(f"{where}: extended resource {name} must be a whole number")
    for name in requests:
        request, limit = parsed.get(("requests", name)), parsed.get(("limits", name))
        if request is not None and limit is not None and request > limit:
            errors.append(f"{where}: {name} request {requests[name]} is above its limit")
        if name not in _STANDARD_RESOURCES and name in limits and request != limit:
            errors.append(f"{where}: extended resource {name} request must equal its limit")
    return errors


def pod_spec_errors(spec: dict, where: str, *, job: bool) -> list[str]:
    errors: list[str] = []
    restart = spec.get("restartPolicy", "Always")
    if job and restart != "Never":
        errors.append(f"{where}: a run's Job pod must have restartPolicy Never, not {restart}")
    if not job and restart != "Always":
        errors.append(f"{where}: a Deployment's pod must have restartPolicy Always")
    volumes = {v["name"] for v in spec.get("volumes") or []}
    for volume in spec.get("volumes") or []:
        errors += name_errors(volume["name"], f"{where} volume")
    errors += label_errors(spec.get("nodeSelector"), f"{where} nodeSelector")
    for toleration in spec.get("tolerations") or []:
        if toleration.get("operator") == "Exists" and toleration.get("value"):
            errors.append(f"{where}: a toleration with operator Exists takes no value")
    containers = (spec.get("initContainers") or []) + spec["containers"]
    names = [c["name"] for c in containers]
    if len(set(names)) != len(names):
        errors.append(f"{where}: container names repeat: {names}")
    for container in containers:
        at = f"{where} container {container['name']}"
        errors += name_errors(container["name"], at)
        errors += _resource_errors(container.get("resources"), at)
        ports = {p.get("name") for p in container.get("ports") or []}
        for port in container.get("ports") or []:
            if "name" in port and (len(port["name"]) > 15 or not _PORT_NAME.match(port["name"])):
                errors.append(f"{at}: port name {port['name']!r} is not an IANA service name")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            port = ((container.get(probe) or {}).get("httpGet") or {}).get("port")
            if isinstance(port, str) and port not in ports:
                errors.append(f"{at}: {probe} names port {port!r}, which it does not declare")
        for env in container.get("env") or []:
            if not _ENV_NAME.match(env["name"]):
                errors.append(f"{at}: env name {env['name']!r} is invalid")
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                errors += name_errors(ref["name"], f"{at} secretKeyRef")
                if not _CONFIG_KEY.match(ref["key"]):
                    errors.append(f"{at}: secretKeyRef key {ref['key']!r} is invalid")
        for mount in container.get("volumeMounts") or []:
            if mount["name"] not in volumes:
                errors.append(f"{at}: mounts volume {mount['name']!r}, which the pod lacks")
    return errors


def restricted_violations(spec: dict) -> list[str]:
    """The Pod Security Standard "restricted" profile, as Pod Security admission applies it."""
    problems = []
    pod_context = spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(f"{flag} is set")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']} is of a disallowed type {kinds}")
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    for container in (spec.get("initContainers") or []) + spec["containers"]:
        context = container.get("securityContext") or {}
        name = container["name"]
        if context.get("privileged"):
            problems.append(f"{name} is privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name} must set allowPrivilegeEscalation: false")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{name} must drop ALL capabilities")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name} adds capabilities")
        if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
            problems.append(f"{name} must run as non-root")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            problems.append(f"{name} runs as uid 0")
        seccomp = (context.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name} needs seccompProfile RuntimeDefault")
    return problems


def api_server_errors(obj: dict) -> list[str]:
    kind, meta = obj["kind"], obj["metadata"]
    where = f"{kind} {meta.get('name')}"
    errors = name_errors(meta.get("name"), where, dns_1035=kind == "Service")
    if "namespace" in meta:
        errors += name_errors(meta["namespace"], f"{where} namespace")
    errors += label_errors(meta.get("labels"), where)
    errors += _annotation_errors(meta.get("annotations"), where)
    for ref in meta.get("ownerReferences") or []:
        errors += name_errors(ref["name"], f"{where} ownerReference")
    spec = obj.get("spec") or {}
    if kind in ("Secret", "ConfigMap"):
        for field in ("data", "stringData", "binaryData"):
            for key in obj.get(field) or {}:
                if not _CONFIG_KEY.match(key):
                    errors.append(f"{where}: key {key!r} is not a valid config key")
    if kind == "ConfigMap":
        data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
        if data.keys() & binary.keys():
            errors.append(f"{where}: keys {sorted(data.keys() & binary.keys())} are in both")
        size = sum(len(k) + len(v.encode()) for k, v in data.items())
        size += sum(len(k) + len(base64.b64decode(v)) for k, v in binary.items())
        if size > MAX_CONFIGMAP_BYTES:
            errors.append(f"{where}: data and binaryData take {size} bytes, over 1 MiB")
    if kind == "Job":
        template = spec["template"]
        errors += label_errors(template["metadata"].get("labels"), f"{where} template")
        errors += _annotation_errors(template["metadata"].get("annotations"), f"{where} template")
        errors += pod_spec_errors(template["spec"], where, job=True)
        if spec.get("backoffLimit", 6) < 0 or spec.get("ttlSecondsAfterFinished", 0) < 0:
            errors.append(f"{where}: backoffLimit and ttlSecondsAfterFinished must be ≥ 0")
        if spec.get("activeDeadlineSeconds", 1) <= 0:
            errors.append(f"{where}: activeDeadlineSeconds must be positive")
    if kind == "Deployment":
        template = spec["template"]
        labels = template["metadata"].get("labels") or {}
        errors += label_errors(labels, f"{where} template")
        selector = spec["selector"].get("matchLabels") or {}
        errors += label_errors(selector, f"{where} selector")
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            errors.append(f"{where}: selector does not match the template's labels")
        errors += pod_spec_errors(template["spec"], where, job=False)
    if kind == "Service":
        errors += label_errors(spec.get("selector"), f"{where} selector")
    if kind == "NetworkPolicy":
        errors += _network_policy_errors(spec, where)
    return errors


def _network_policy_errors(spec: dict, where: str) -> list[str]:
    """Selectors, CIDRs (an `except` strictly inside its `cidr`), protocols and ports."""
    errors = label_errors(spec["podSelector"].get("matchLabels"), f"{where} podSelector")
    rules = [*spec.get("ingress", []), *spec.get("egress", [])]
    for rule in rules:
        for peer in [*rule.get("to", []), *rule.get("from", [])]:
            for selector in ("podSelector", "namespaceSelector"):
                if selector in peer:
                    errors += label_errors(peer[selector].get("matchLabels"), f"{where} peer")
            block = peer.get("ipBlock")
            if block is None:
                continue
            try:
                network = ipaddress.ip_network(block["cidr"])
                for excepted in block.get("except", []):
                    inner = ipaddress.ip_network(excepted)
                    if inner.version != network.version or not (
                        inner.subnet_of(network) and inner != network
                    ):
                        errors.append(f"{where}: except {excepted} is not inside {network}")
            except ValueError as exc:
                errors.append(f"{where}: {exc}")
        for port in rule.get("ports", []):
            if port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
                errors.append(f"{where}: protocol {port['protocol']!r} is not TCP, UDP or SCTP")
            if isinstance(port.get("port"), int) and not 1 <= port["port"] <= 65535:
                errors.append(f"{where}: port {port['port']} is out of range")
    return errors
