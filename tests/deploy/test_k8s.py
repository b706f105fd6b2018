"""deploy/k8s/: renders with kustomize, and every manifest is wired to the others and to
what the service really offers (routes, CLI options, settings, ports)."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from receiver.cli.main import build_parser
from receiver.ingest.webhook import PATH as WEBHOOK_PATH
from receiver.settings import ENV_NAMES, Settings
from tests.deploy.deployfiles import (
    K8S,
    PROMETHEUS_CONFIG,
    SECRET_ENV,
    kustomization_manifests,
    load_yaml,
    parse_yaml_text,
)

SECRET_NAME = "tiktok-webhooks"
# Read by args through $(VAR) expansion, not by the settings.
ARG_ONLY_ENV = {"FORWARDED_ALLOW_IPS"}


def manifests() -> list[dict[str, Any]]:
    return kustomization_manifests()


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in manifests() if doc["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}"
    return found[0]


def deployment(component: str) -> dict[str, Any]:
    return named("Deployment", f"tiktok-webhooks-{component}")


def container(component: str) -> dict[str, Any]:
    containers = deployment(component)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def config_map() -> dict[str, str]:
    data: dict[str, str] = named("ConfigMap", "tiktok-webhooks")["data"]
    return data


def expanded_args(component: str) -> list[str]:
    """The container's args with Kubernetes' $(VAR) expansion from its ConfigMap env."""
    values = {}
    for env in container(component).get("env", []):
        ref = env.get("valueFrom", {}).get("configMapKeyRef")
        if ref:
            values[env["name"]] = config_map()[ref["key"]]
    args: list[str] = container(component)["args"]
    return [re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], arg) for arg in args]


def parse_cli(args: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(args)


def port_number(component: str, name: str) -> int:
    for port in container(component)["ports"]:
        if port["name"] == name:
            number: int = port["containerPort"]
            return number
    raise AssertionError(f"{component} has no port named {name}")


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def pod_labels() -> Iterator[tuple[str, dict[str, str]]]:
    for doc in of_kind("Deployment"):
        yield doc["metadata"]["name"], doc["spec"]["template"]["metadata"]["labels"]


# --- rendering ------------------------------------------------------------------------


def kustomize_command() -> list[str] | None:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize", str(K8S)]
    if shutil.which("kustomize"):
        return ["kustomize", "build", str(K8S)]
    return None


@pytest.mark.skipif(
    kustomize_command() is None,
    reason="neither kubectl nor kustomize is installed; the structural tests below still run",
)
def test_kustomize_renders_every_resource_into_the_namespace() -> None:
    command = kustomize_command()
    assert command is not None
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    rendered = parse_yaml_text(result.stdout)
    assert sorted((d["kind"], d["metadata"]["name"]) for d in rendered) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in manifests()
    )
    for doc in rendered:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "tiktok-webhooks", doc["metadata"]["name"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "tiktok-webhooks"
        if doc["kind"] == "Deployment":
            for spec in doc["spec"]["template"]["spec"]["containers"]:
                assert spec["image"] == "tiktok-webhooks:0.1.0"


def test_every_listed_resource_is_a_well_formed_object() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, "every manifest is in the kustomization, and only those"
    kinds = set()
    for doc in manifests():
        for required in (doc["apiVersion"], doc["kind"], doc["metadata"]["name"]):
            assert required, doc
        kinds.add(doc["kind"])
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
        "Ingress",
        "ConfigMap",
    } <= kinds


def test_the_redis_config_fsyncs_every_write_and_never_evicts() -> None:
    conf = named("ConfigMap", "tiktok-webhooks-redis")["data"]["redis.conf"]
    lines = {line.strip() for line in conf.splitlines() if not line.strip().startswith("#")}
    assert {"appendonly yes", "appendfsync always", "maxmemory-policy noeviction"} <= lines


# --- secrets and settings -------------------------------------------------------------


def test_secrets_are_referenced_never_inlined() -> None:
    assert of_kind("Secret") == [], "the Secret is created out of band (docs/deploy.md)"
    for component in ("receiver", "worker"):
        envs = {env["name"]: env for env in container(component)["env"]}
        for name in SECRET_ENV - {"ADMIN_TOKEN"}:
            assert name in envs, f"{component} lacks {name}"
        for name, env in envs.items():
            if name in SECRET_ENV:
                assert "value" not in env, f"{component}: {name} is inlined"
                ref = env["valueFrom"]["secretKeyRef"]
                assert ref["name"] == SECRET_NAME
                assert ref["key"] == name
    assert "ADMIN_TOKEN" not in {env["name"] for env in container("worker")["env"]}
    assert not SECRET_ENV & set(config_map()), "a secret setting sits in the ConfigMap"


def test_env_names_are_settings_the_service_reads() -> None:
    for component in ("receiver", "worker"):
        for env in container(component)["env"]:
            assert env["name"] in set(ENV_NAMES) | ARG_ONLY_ENV, env["name"]
            ref = env.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                assert ref["key"] in config_map(), ref
    assert set(config_map()) <= set(ENV_NAMES) | ARG_ONLY_ENV


# --- containers -----------------------------------------------------------------------


@pytest.mark.parametrize("component", ["receiver", "worker"])
def test_containers_are_hardened_and_sized(component: str) -> None:
    pod = deployment(component)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    spec = container(component)
    assert spec["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(spec["resources"][kind]), f"{component} {kind}"
    assert spec["image"] == "tiktok-webhooks"
    selector = deployment(component)["spec"]["selector"]["matchLabels"]
    assert labels_match(selector, deployment(component)["spec"]["template"]["metadata"]["labels"])


def test_receiver_args_are_valid_cli_and_match_the_port() -> None:
    args = parse_cli(expanded_args("receiver"))
    assert args.command == "serve"
    assert args.port == port_number("receiver", "http")
    assert args.host == "0.0.0.0"  # noqa: S104 (the pod's address, behind the policy)
    assert args.forwarded_allow_ips == config_map()["FORWARDED_ALLOW_IPS"]


def test_worker_args_are_valid_cli_and_match_the_port() -> None:
    args = parse_cli(expanded_args("worker"))
    assert args.command == "worker"
    assert args.metrics_port == port_number("worker", "metrics")
    # Prometheus must reach it from outside the pod.
    assert args.metrics_host == "0.0.0.0"  # noqa: S104


def test_receiver_probes() -> None:
    spec = container("receiver")
    assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        port_number("receiver", spec[probe]["httpGet"]["port"])


def test_worker_probes() -> None:
    spec = container("worker")
    assert spec["livenessProbe"]["exec"]["command"] == ["tiktok-webhooks", "worker", "--check"]
    assert spec["readinessProbe"]["httpGet"]["path"] == "/metrics"
    port_number("worker", spec["readinessProbe"]["httpGet"]["port"])


def test_grace_periods_cover_the_shutdown_bounds() -> None:
    receiver = deployment("receiver")["spec"]["template"]["spec"]
    sleep = container("receiver")["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    graceful = parse_cli(expanded_args("receiver")).graceful_timeout
    assert receiver["terminationGracePeriodSeconds"] > int(sleep[1]) + graceful
    worker = deployment("worker")["spec"]["template"]["spec"]
    wait = Settings().worker_shutdown_wait_seconds
    assert worker["terminationGracePeriodSeconds"] > wait


# --- services, scaling, disruption, monitoring ----------------------------------------


def test_services_select_pods_and_name_their_ports() -> None:
    for service in of_kind("Service"):
        matches = [
            name
            for name, labels in pod_labels()
            if labels_match(service["spec"]["selector"], labels)
        ]
        assert len(matches) == 1, service["metadata"]["name"]
        component = matches[0].removeprefix("tiktok-webhooks-")
        for port in service["spec"]["ports"]:
            port_number(component, port["targetPort"])


def test_pdbs_cover_both_deployments() -> None:
    covered = set()
    for pdb in of_kind("PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        covered |= {name for name, labels in pod_labels() if labels_match(selector, labels)}
        assert pdb["spec"]["minAvailable"] >= 1
    assert covered == {"tiktok-webhooks-receiver", "tiktok-webhooks-worker"}
    for component in ("receiver", "worker"):
        assert deployment(component)["spec"]["replicas"] > 1, "a PDB of 1 needs 2 replicas"


def test_hpa_scales_the_receiver_on_cpu() -> None:
    (hpa,) = of_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "tiktok-webhooks-receiver",
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] >= 2
    assert "cpu" in container("receiver")["resources"]["requests"], "HPA needs a CPU request"


def test_service_monitors_scrape_both_with_the_alerts_job_names() -> None:
    jobs = {job["job_name"] for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
    scraped = set()
    for monitor in of_kind("ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        services = [
            s for s in of_kind("Service") if labels_match(selector, s["metadata"]["labels"])
        ]
        assert len(services) == 1
        service = services[0]
        port_names = {port["name"] for port in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names
            assert endpoint["path"] == "/metrics"
        # Without jobLabel the Prometheus Operator uses the Service name as the job.
        assert "jobLabel" not in monitor["spec"]
        scraped.add(service["metadata"]["name"])
    assert scraped == jobs


# --- the public edge ------------------------------------------------------------------


def test_ingress_is_https_and_routes_only_the_public_paths() -> None:
    (ingress,) = of_kind("Ingress")
    assert ingress["spec"]["tls"], "the callback must be HTTPS at the edge"
    tls_hosts = {host for entry in ingress["spec"]["tls"] for host in entry["hosts"]}
    paths = []
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in tls_hosts
        for path in rule["http"]["paths"]:
            paths.append((path["path"], path["pathType"]))
            backend = path["backend"]["service"]
            service = named("Service", backend["name"])
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert sorted(paths) == sorted([(WEBHOOK_PATH, "Exact"), ("/oauth/tiktok", "Prefix")])
    redirect = "nginx.ingress.kubernetes.io/ssl-redirect"
    assert ingress["metadata"]["annotations"][redirect] == "true"
    uri = config_map()["TIKTOK_REDIRECT_URI"]
    assert uri.startswith("https://")
    assert uri.split("/")[2] in tls_hosts


def test_network_policies_let_only_ingress_and_prometheus_in() -> None:
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind("NetworkPolicy")}
    deny = policies.pop("default-deny-ingress")
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    for component, port in (("receiver", "http"), ("worker", "metrics")):
        spec = policies.pop(f"tiktok-webhooks-{component}")
        labels = deployment(component)["spec"]["template"]["metadata"]["labels"]
        assert labels_match(spec["podSelector"]["matchLabels"], labels)
        sources = set()
        for rule in spec["ingress"]:
            assert rule["from"], "a rule without `from` would admit everyone"
            assert [p["port"] for p in rule["ports"]] == [port]
            for peer in rule["from"]:
                assert "ipBlock" not in peer
                sources.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
        expected = {"ingress-nginx", "prometheus"} if component == "receiver" else {"prometheus"}
        assert sources == expected
    assert policies == {}
