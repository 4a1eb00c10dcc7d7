"""Check the rendered Kubernetes manifests against this deployment's own operating rules.

Schemas (scripts/validate_k8s.py) say a manifest is well-formed and checkov says it is hardened;
this says it runs the way docs/DEPLOY.md promises:

- nothing renders a Namespace (the app does not own it), and the image names a registry;
- the API keys are required (SRGAN_AUTH=required, the Secret not optional);
- /metrics on its own port: the PodMonitor scrapes it, the Service does not expose it, and
  the NetworkPolicy admits the service port and the metrics port and nothing else;
- the largest image fits the queue bound (tiles of SRGAN_TILE in a square of
  SRGAN_MAX_INPUT_PIXELS <= SRGAN_MAX_QUEUE_TILES);
- GPU pods: memory request == limit, a rollout that needs no spare GPU (maxSurge 0);
- torch's threads from the CPU request (OMP_NUM_THREADS), replicas spread over the topology;
- the autoscaler: at least two replicas, a fallback, queries that fail on no data, the namespace
  of the objects in the queries, scale-up and scale-down behaviour at least a cold start long;
- the monitoring objects carry the labels kube-prometheus-stack selects on;
- Jobs: a podFailurePolicy.

    kubectl kustomize k8s/overlays/gpu | python scripts/check_k8s_policy.py -
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Iterator
from typing import Any

import yaml
from check_report import report

Doc = dict[str, Any]


def quantity_bytes(value: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    if not match or match.group(2) not in {"", *units}:
        raise ValueError(f"not a quantity: {value!r}")
    return float(match.group(1)) * units.get(match.group(2), 1)


def containers(doc: Doc) -> Iterator[Doc]:
    yield from doc["spec"]["template"]["spec"]["containers"]


def seconds_of_startup(container: Doc) -> int:
    probe = container.get("startupProbe", {})
    return int(probe.get("periodSeconds", 10)) * int(probe.get("failureThreshold", 3))


class Checker:
    def __init__(self, docs: list[Doc]) -> None:
        self.docs = docs
        self.problems: list[str] = []

    def of(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def expect(self, ok: bool, where: str, message: str) -> None:
        if not ok:
            self.problems.append(f"{where}: {message}")

    def run(self) -> list[str]:
        for doc in self.docs:
            self.expect(
                doc["kind"] != "Namespace",
                f"Namespace/{doc['metadata']['name']}",
                "the app must not own its namespace (k8s/namespace creates it)",
            )
        for deployment in self.of("Deployment"):
            self.deployment(deployment)
        for job in self.of("Job"):
            self.job(job)
        for scaled in self.of("ScaledObject"):
            self.scaled_object(scaled)
        for kind in ("PodMonitor", "PrometheusRule"):
            for doc in self.of(kind):
                self.expect(
                    "release" in doc["metadata"].get("labels", {}),
                    f"{kind}/{doc['metadata']['name']}",
                    "no `release` label: kube-prometheus-stack's Prometheus ignores it",
                )
        for config_map in self.of("ConfigMap"):
            if any(key.endswith(".json") for key in config_map.get("data", {})):
                self.expect(
                    config_map["metadata"].get("labels", {}).get("grafana_dashboard") == "1",
                    f"ConfigMap/{config_map['metadata']['name']}",
                    'a dashboard without the grafana_dashboard: "1" label the Grafana sidecar loads',
                )
        return self.problems

    def pod_basics(self, doc: Doc, where: str) -> None:
        pod = doc["spec"]["template"]["spec"]
        for container in pod["containers"]:
            image = container["image"]
            first = image.split("/", 1)[0]
            self.expect(
                "/" in image and ("." in first or ":" in first or first == "localhost"),
                where,
                f"image {image!r} names no registry: a bare name resolves to a public registry",
            )
            resources = container.get("resources", {})
            requests, limits = resources.get("requests", {}), resources.get("limits", {})
            env = {e["name"]: e for e in container.get("env", [])}
            omp = env.get("OMP_NUM_THREADS", {})
            from_request = (
                omp.get("valueFrom", {}).get("resourceFieldRef", {}).get("resource") == "requests.cpu"
            )
            self.expect(
                ("cpu" in requests and from_request) or "value" in omp,
                where,
                "OMP_NUM_THREADS must come from requests.cpu (or be set): torch starts one per node core",
            )
            if "nvidia.com/gpu" in limits:
                self.expect(
                    "memory" in requests
                    and "memory" in limits
                    and quantity_bytes(requests["memory"]) == quantity_bytes(limits["memory"]),
                    where,
                    "a GPU pod's memory request must equal its limit (evicted last)",
                )

    def config(self, deployment: Doc) -> dict[str, str]:
        """The SRGAN_* settings the Deployment's containers get from ConfigMaps and literal env."""
        settings: dict[str, str] = {}
        maps = {c["metadata"]["name"]: c.get("data", {}) for c in self.of("ConfigMap")}
        for container in containers(deployment):
            for source in container.get("envFrom", []):
                settings.update(maps.get(source.get("configMapRef", {}).get("name", ""), {}))
            settings.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
        return settings

    def deployment(self, deployment: Doc) -> None:
        name = deployment["metadata"]["name"]
        where = f"Deployment/{name}"
        self.pod_basics(deployment, where)
        pod = deployment["spec"]["template"]["spec"]
        settings = self.config(deployment)
        gpu = any("nvidia.com/gpu" in c.get("resources", {}).get("limits", {}) for c in pod["containers"])
        self.expect(len(pod.get("topologySpreadConstraints", [])) > 0, where, "no topologySpreadConstraints")
        rolling = deployment["spec"].get("strategy", {}).get("rollingUpdate", {})
        if gpu:
            self.expect(
                str(rolling.get("maxSurge")) == "0" and str(rolling.get("maxUnavailable", "0")) != "0",
                where,
                "a GPU rollout must not need a spare GPU: maxSurge 0, maxUnavailable >= 1",
            )

        self.expect(settings.get("SRGAN_AUTH") == "required", where, "SRGAN_AUTH must be `required`")
        for container in pod["containers"]:
            keys = next((e for e in container.get("env", []) if e["name"] == "SRGAN_API_KEYS"), None)
            secret = (keys or {}).get("valueFrom", {}).get("secretKeyRef")
            self.expect(
                secret is not None and not secret.get("optional", False),
                where,
                "SRGAN_API_KEYS must come from a Secret that is not optional",
            )

        # Metrics on their own port, scraped by the PodMonitor and nowhere exposed.
        ports = {p.get("name"): p["containerPort"] for c in pod["containers"] for p in c.get("ports", [])}
        metrics_port = settings.get("SRGAN_METRICS_PORT")
        self.expect(
            metrics_port is not None and ports.get("metrics") == int(metrics_port),
            where,
            f"container port `metrics` ({ports.get('metrics')}) is not SRGAN_METRICS_PORT ({metrics_port})",
        )
        for service in self.of("Service"):
            exposed = {p.get("targetPort") for p in service["spec"]["ports"]} | {
                p["port"] for p in service["spec"]["ports"]
            }
            self.expect(
                not exposed & {"metrics", ports.get("metrics")},
                f"Service/{service['metadata']['name']}",
                "exposes the metrics port",
            )
        monitors = self.of("PodMonitor")
        self.expect(
            any(e.get("port") == "metrics" for m in monitors for e in m["spec"]["podMetricsEndpoints"]),
            where,
            "no PodMonitor scrapes the `metrics` port",
        )
        policies = [
            p
            for p in self.of("NetworkPolicy")
            if set(p["spec"]["podSelector"].get("matchLabels", {}).items())
            <= set(deployment["spec"]["template"]["metadata"]["labels"].items())
        ]
        admitted = {
            str(port["port"])
            for p in policies
            for rule in p["spec"].get("ingress", [])
            for port in rule.get("ports", [])
        }
        self.expect(
            bool(policies) and admitted == {"http", "metrics"},
            where,
            f"a NetworkPolicy must admit exactly the http and metrics ports (admits {sorted(admitted)})",
        )

        # The largest image a setting allows must fit the queue bound.
        tile = int(settings.get("SRGAN_TILE", 0))
        pixels = int(settings.get("SRGAN_MAX_INPUT_PIXELS", 0))
        queue = int(settings.get("SRGAN_MAX_QUEUE_TILES", 0))
        if tile and pixels and queue:
            tiles = math.ceil(math.isqrt(pixels) / tile) ** 2
            self.expect(
                tiles <= queue,
                where,
                f"a {math.isqrt(pixels)}^2 image: {tiles} tiles of {tile} > SRGAN_MAX_QUEUE_TILES={queue}",
            )
        else:
            self.problems.append(
                f"{where}: SRGAN_TILE, SRGAN_MAX_INPUT_PIXELS and SRGAN_MAX_QUEUE_TILES must be set"
            )

        scaled = [s for s in self.of("ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == name]
        self.expect(len(scaled) == 1, where, "exactly one ScaledObject must drive it")
        for s in scaled:
            behavior = (
                s["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {})
            )
            cold_start = max(seconds_of_startup(c) for c in pod["containers"])
            up, down = behavior.get("scaleUp", {}), behavior.get("scaleDown", {})
            self.expect(
                bool(up.get("policies")) and all(p["periodSeconds"] >= cold_start for p in up["policies"]),
                f"ScaledObject/{s['metadata']['name']}",
                f"scaleUp policies must span a cold start ({cold_start} s of startup probe)",
            )
            self.expect(
                down.get("stabilizationWindowSeconds", 0) >= cold_start,
                f"ScaledObject/{s['metadata']['name']}",
                f"scaleDown must keep capacity for at least a cold start ({cold_start} s)",
            )

    def scaled_object(self, scaled: Doc) -> None:
        where = f"ScaledObject/{scaled['metadata']['name']}"
        spec = scaled["spec"]
        self.expect(spec.get("minReplicaCount", 0) >= 2, where, "minReplicaCount must be at least 2")
        self.expect(
            "fallback" in spec, where, "no fallback: a failing query would hold the replica count silently"
        )
        namespace = scaled["metadata"].get("namespace")
        for trigger in spec["triggers"]:
            if trigger["type"] != "prometheus":
                continue
            meta = trigger["metadata"]
            self.expect(
                meta.get("ignoreNullValues") == "false",
                where,
                f'trigger {trigger.get("name")}: ignoreNullValues must be "false"',
            )
            self.expect(
                trigger.get("metricType", "AverageValue") == "AverageValue",
                where,
                f"trigger {trigger.get('name')}: fallback needs metricType AverageValue",
            )
            self.expect(
                f'namespace="{namespace}"' in meta["query"],
                where,
                f'trigger {trigger.get("name")}: the query must select namespace="{namespace}"',
            )

    def job(self, job: Doc) -> None:
        where = f"Job/{job['metadata']['name']}"
        self.pod_basics(job, where)
        self.expect(bool(job["metadata"].get("namespace")), where, "no namespace")
        self.expect(
            bool(job["spec"].get("podFailurePolicy", {}).get("rules")),
            where,
            "no podFailurePolicy: preemptions would use up backoffLimit",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=argparse.FileType(), help="rendered manifests, - for stdin")
    args = parser.parse_args()
    failures = sum(
        report(file.name, Checker([d for d in yaml.safe_load_all(file) if d]).run()) for file in args.files
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
