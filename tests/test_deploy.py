"""deploy/: every manifest valid against Kubernetes' own schemas (offline), and in step with the
service: the probes' routes, the port, the commands, the drain and the user it runs as."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.__main__ import SHUTDOWN_TIMEOUT_SECONDS
from service.app import create_app
from service.config import Config
from tests.processes import ROOT

DEPLOY = ROOT / "deploy"
# The oldest Kubernetes release still maintained when these were written; the schemas ship
# inside the kubernetes-validate wheel, so validation needs no network.
KUBERNETES_VERSION = "1.30.0"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object under deploy/, by kind/name."""
    found = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in documents(path):
            found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def pod_specs() -> dict[str, dict[str, Any]]:
    """The pod template of each workload, by kind/name."""
    specs = {}
    for key, doc in manifests().items():
        if doc["kind"] in ("Deployment", "Job"):
            specs[key] = doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            specs[key] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return specs


def dockerfile_user() -> int:
    match = re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "the Dockerfile names no numeric USER"
    return int(match.group(1))


@pytest.mark.parametrize("path", sorted(p.name for p in DEPLOY.glob("*.yaml")))
def test_every_manifest_is_valid_for_kubernetes(path):
    docs = documents(DEPLOY / path)
    assert docs
    if path == "kustomization.yaml":
        (kustomization,) = docs
        assert kustomization["kind"] == "Kustomization"
        listed = set(kustomization["resources"])
        on_disk = {p.name for p in DEPLOY.glob("*.yaml")} - {path, "secret.example.yaml"}
        assert listed == on_disk
        return
    for doc in docs:
        # strict: an unknown or misspelt field is an error, as `kubectl apply --validate` says.
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_deployment_probes_routes_the_service_serves_on_the_port_it_listens_on():
    deployment = manifests()["Deployment/zoom-session-logs"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = manifests()["ConfigMap/zoom-session-logs"]["data"]
    assert ports == {"http": int(config["PORT"])}
    routes = {
        r.resource.canonical
        for r in create_app(Config.from_env(server_environment())).router.routes()
        if r.method == "GET" and r.resource is not None
    }
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}
        assert path in routes
    service = manifests()["Service/zoom-session-logs"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def server_environment() -> dict[str, str]:
    """What the pods' environment holds: the ConfigMap and the example Secret."""
    (secret,) = documents(DEPLOY / "secret.example.yaml")
    return {**manifests()["ConfigMap/zoom-session-logs"]["data"], **secret["stringData"]}


def test_the_server_reads_its_whole_configuration_from_the_configmap_and_the_secret():
    config = Config.from_env(server_environment())
    assert config.zoom_api is not None  # accept is enabled
    assert config.port == 8080


def test_the_grace_period_outlasts_the_prestop_pause_and_the_drain():
    spec = manifests()["Deployment/zoom-session-logs"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    pause = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    assert spec["terminationGracePeriodSeconds"] > int(pause[1]) + SHUTDOWN_TIMEOUT_SECONDS


@pytest.mark.parametrize("workload", sorted(pod_specs()))
def test_every_workload_runs_the_image_as_its_non_root_user_with_the_shared_settings(workload):
    spec = pod_specs()[workload]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == dockerfile_user()
    for container in spec["containers"]:
        assert container["image"] == "zoom-session-logs"
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert "memory" in container["resources"]["limits"]
        sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
        assert sources == {"zoom-session-logs"}
        assert {next(iter(s)) for s in container["envFrom"]} == {"configMapRef", "secretRef"}


@pytest.mark.parametrize(
    "workload", sorted(k for k in pod_specs() if not k.startswith("Deployment/"))
)
def test_every_job_command_is_one_the_service_understands(workload):
    (container,) = pod_specs()[workload]["containers"]
    command = container["command"]
    assert command[:3] == ["python", "-m", "service"]
    # With the pods' environment but DATABASE_URL, a command that parsed its arguments stops at
    # once, naming it; an unknown command or option would print its usage instead.
    pods = {k: v for k, v in server_environment().items() if k != "DATABASE_URL"}
    env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    result = subprocess.run(
        [sys.executable, *command[1:]],
        cwd=ROOT,
        env={**env, **pods},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "DATABASE_URL is required" in result.stderr, result.stderr


def test_the_autoscaler_scales_the_deployment_on_cpu():
    hpa = manifests()["HorizontalPodAutoscaler/zoom-session-logs"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "zoom-session-logs"
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    deployment = manifests()["Deployment/zoom-session-logs"]["spec"]["template"]["spec"]
    # Utilisation is measured against the request: without one the HPA cannot act.
    assert "cpu" in deployment["containers"][0]["resources"]["requests"]
