"""Validate rendered Kubernetes manifests strictly, custom resources included.

Built-in kinds go through kubernetes-validate's strict schemas (unknown fields are errors)
for each --kubernetes-version. PodMonitor, PrometheusRule and ScaledObject go through
the hand-written schemas in k8s/crd-schemas/, which reuse the built-in definitions for
ObjectMeta, LabelSelector and HPA behaviour. Unlike kubernetes-validate alone, a kind
without a schema is an error, not a warning: nothing passes unchecked.

    kubectl kustomize k8s/overlays/gpu | python scripts/validate_k8s.py -
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate.utils as kv
import referencing
import referencing.jsonschema
import yaml
from packaging.version import Version

CRD_SCHEMAS = Path(__file__).resolve().parent.parent / "k8s" / "crd-schemas"


def schema_name(doc: dict) -> str:
    """kubernetes-validate's file naming: ScaledObject in keda.sh/v1alpha1 -> scaledobject-keda-v1alpha1."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", doc["apiVersion"])
    return f"{doc['kind'].lower()}-{group_version}"


def crd_validator(path: Path, version: str) -> jsonschema.protocols.Validator:
    # The built-in definitions of that Kubernetes version, under the $id our schemas refer to.
    definitions = kv.schema_contents(
        f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version
    )
    registry = referencing.Resource.from_contents(definitions) @ referencing.Registry()
    return jsonschema.Draft202012Validator(json.loads(path.read_text()), registry=registry)


def check(doc: dict, version: str) -> str | None:
    """None if `doc` is valid for Kubernetes `version`, else the reason."""
    crd_schema = CRD_SCHEMAS / f"{schema_name(doc)}.json"
    if crd_schema.exists():
        errors = sorted(crd_validator(crd_schema, version).iter_errors(doc), key=lambda e: list(e.path))
        return "; ".join(f"{'.'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors) or None
    try:
        kv.validate(doc, version, strict=True)
    except kv.ValidationError as error:
        return f"{'.'.join(map(str, error.path))}: {error.message}"
    except kv.SchemaNotFoundError as error:
        return f"{error.message} (and none in {CRD_SCHEMAS.name}/)"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=argparse.FileType(), help="YAML files, - for stdin")
    parser.add_argument(
        "-k",
        "--kubernetes-version",
        action="append",
        dest="versions",
        help=f"repeatable; default {kv.latest_version()}",
    )
    args = parser.parse_args()
    failures = 0
    for file in args.files:
        for doc in (d for d in yaml.safe_load_all(file) if d):
            for version in args.versions or [kv.latest_version()]:
                # Resolve "1.30" to the schema release kubernetes-validate ships, e.g. 1.30.0.
                release = next(
                    v for v in reversed(kv.all_versions()) if Version(kv.major_minor(v)) <= Version(version)
                )
                problem = check(doc, release)
                failures += problem is not None
                where = (
                    f"{file.name}: {doc['kind']}/{doc['metadata']['name']}"
                    f" (Kubernetes {kv.major_minor(release)})"
                )
                print(f"ok     {where}" if problem is None else f"ERROR  {where}: {problem}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
