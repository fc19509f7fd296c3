"""Building: specs -> Resources: resolves references, hashes artifacts, derives versions and digests."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from mlctl.boundary import describe, is_inside
from mlctl.digests import HashCache, LinkRefused, NotRegularFile, json_digest, list_files, merkle_digest
from mlctl import scalesettings
from mlctl.errors import Diagnostic
from mlctl.listen import ListenBlock
from mlctl.listenchecks import listen_attributes
from mlctl.resources import Address, Kind, Resource
from mlctl.schemas import mlflowmodel
from mlctl.schemas.specs import DeploymentSpec, EnvSpec, ModelSpec, Ref, Specs, probed
from mlctl.schemas.validate import did_you_mean, honoured_fields

# Attribute keys kept in attributes (the runtime needs them) but left out of digests, and out of
# plan diffs: absolute paths, so a checkout in another folder plans no change; and an image's copies
# of what its environment's spec digest already covers (the base image, the build context), so a
# state recorded before they were copied plans no change either.
PATH_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "model": ("path",),
    "environment": ("conda_file", "build_context"),
    "image": ("base_image", "build_context", "dockerfile_path"),
    "deployment": ("code",),
    "endpoint": ("tls_files",),
}


def resource_digest(kind: Kind, attributes: dict) -> str:
    """Pure: the digest of a resource: its attributes (artifact digests included) without absolute paths."""
    skip = PATH_ATTRIBUTES.get(kind.value, ())
    return json_digest({k: v for k, v in attributes.items() if k not in skip})


def derive_version(digest: str) -> str:
    """Pure: the version of an asset whose YAML leaves it out: 'd' + 10 hex chars of its content digest."""
    return "d" + digest.removeprefix("sha256:")[:10]


@dataclass
class Builder:
    """Turns specs into resources. Effects: reads and hashes the referenced files (through the
    cache) and parses conda files; problems go to `diags`, every file read to `inputs`."""

    specs: Specs
    cache: HashCache
    diags: list[Diagnostic]
    inputs: dict[str, str] = field(default_factory=dict)
    resources: dict[Address, Resource] = field(default_factory=dict)
    assets: dict[tuple[Kind, str], tuple[Resource, object]] = field(default_factory=dict)
    conda: dict[str, dict | None] = field(default_factory=dict)  # one parse per conda file
    trees: dict[tuple, tuple] = field(default_factory=dict)  # one walk per (folder, root name)
    runtime: str | None = None  # the project's runtime: the cloud-only fields it honours become attributes
    boundary: str | None = None  # the real path of the project's boundary (mlctl.boundary): nothing read beyond
    listen: ListenBlock = field(default_factory=ListenBlock)  # the project file's `listen:` (mlctl.listen)

    def build(self) -> list[Resource]:
        for m in self.specs.models:
            self.build_model(m)
        for e in self.specs.environments:
            self.build_environment(e)
        for e in self.specs.endpoints:
            self.build_endpoint(e)
        self.check_listen_names()
        for d in self.specs.deployments:
            self.build_deployment(d)
        by_endpoint: dict[str, list[Address]] = {}
        for a in sorted(self.resources):
            if a.kind is Kind.DEPLOYMENT:
                by_endpoint.setdefault(a.endpoint, []).append(a)
        for e in self.specs.endpoints:
            self.build_traffic(e, by_endpoint.get(e.name, []))
        return sorted(self.resources.values(), key=lambda r: r.address)

    def _hash(self, path, where, root_name=None, builtin: bool = False):
        """(Merkle digest, {rel: sha}) of a file or folder, recording every file in `inputs`. A `builtin`
        folder (mlctl's own code for a deployment without one) is read where mlctl is installed."""
        key = (str(path), root_name)
        if key in self.trees:
            return self.trees[key]
        probed(path)
        boundary = None if builtin else self.boundary
        if boundary is not None and not is_inside(os.path.realpath(path), self.boundary):
            self.diags.append(
                Diagnostic(
                    f"{path} is outside the project: mlctl reads nothing beyond {describe(self.boundary)}",
                    "Move the files inside the project (or run mlctl from the folder that holds both).",
                    **where,
                )
            )
            return None, None
        try:
            files, excluded = {}, []
            for rel, full in list_files(path, excluded, boundary).items():
                files[rel] = self.cache.file_sha256(full)
                self.inputs[full] = "sha256:" + files[rel]
            self.trees[key] = merkle_digest(files, root_name), files
            if excluded:
                ignore = ".amlignore" if ".amlignore" in files else ".gitignore"
                more = f" and {len(excluded) - 5} more" if len(excluded) > 5 else ""
                shown = ", ".join(sorted(excluded)[:5]) + more
                self.diags.append(
                    Diagnostic(
                        f"{os.path.basename(path)}/ leaves out what its {ignore} names, as Azure ML does: {shown}",
                        severity="note",
                        **where,
                    )
                )
            return self.trees[key]
        except LinkRefused as e:
            what = (
                f"a symbolic link out of the project (to {e.target}): mlctl reads nothing beyond "
                f"{describe(self.boundary)}"
                if e.why == "out"
                else f"a symbolic link to a folder that holds it ({e.target}), a loop"
            )
            self.diags.append(
                Diagnostic(
                    f"{e.link} is {what}",
                    "Replace the link with the files it should hold, or point it inside the project.",
                    **where,
                )
            )
            return None, None
        except OSError as e:
            todo = (
                "Name regular files (or a folder of them), not a special file."
                if isinstance(e, NotRegularFile)
                else "Check that it exists and is readable."
            )
            self.diags.append(Diagnostic(f"cannot read {e.filename or path}: {e.strerror or e}", todo, **where))
            return None, None

    def _register(self, kind: Kind, spec, resource: Resource) -> Resource | None:
        """Add an asset; the same NAME twice must be the same version and content."""
        key = (kind, spec.name)
        if key not in self.assets:
            self.assets[key] = (resource, spec)
            self.resources[resource.address] = resource
            return resource
        prior, prior_spec = self.assets[key]
        a, b = prior.attributes, resource.attributes
        if a["version"] != b["version"]:
            self.diags.append(
                Diagnostic(
                    f"{kind.value} '{spec.name}' is defined with two versions: {a['version']} "
                    f"(at {prior_spec.where.text()}) and {b['version']}",
                    f"A configuration holds one version of a {kind.value}: give the other one its own name.",
                    **spec.where.at("version"),
                )
            )
        elif prior.digest != resource.digest:
            first_name = prior_spec.where.path + ("name",)
            differ = [k for k in b if a.get(k) != b[k] and k not in PATH_ATTRIBUTES.get(kind.value, ())]
            what = "different content" if differ == ["content_digest"] else "differences in " + ", ".join(differ)
            self.diags.append(
                Diagnostic(
                    f"{kind.value} '{spec.name}' version {a['version']} is defined twice with {what} "
                    f"(first at {prior_spec.where.doc.display}:{prior_spec.where.doc.line(first_name)})",
                    "A registered version is immutable: give one of them a new version, or leave 'version' out "
                    "so mlctl derives it from the content.",
                    **spec.where.at("name"),  # the name: line, as a duplicate deployment's or endpoint's error
                )
            )
        return prior

    def build_model(self, spec: ModelSpec) -> Resource | None:
        is_file = spec.path.is_file()
        digest, files = self._hash(spec.path, spec.where.at("path"), None if is_file else spec.path.name)
        if digest is None:
            return None
        if not files:
            self.diags.append(
                Diagnostic(
                    f"model '{spec.name}' has no files: {spec.path} is empty",
                    "Train or copy the model into it before applying.",
                    severity="warning",
                    **spec.where.at("path"),
                )
            )
        attrs = {
            "name": spec.name,
            "version": spec.version or derive_version(digest),
            "path": str(spec.path),
            "is_file": is_file,
            "type": spec.type,
            "description": spec.description,
            "tags": spec.tags,
            "content_digest": digest,
        }
        res = Resource(
            Address(Kind.MODEL, spec.name),
            attrs,
            resource_digest(Kind.MODEL, attrs),
            (),
            {"model/" + rel: sha for rel, sha in files.items()},
            tuple(f for f, _ in spec.ignored),
            spec.where.source(),
        )
        return self._register(Kind.MODEL, spec, res)

    def build_environment(self, spec: EnvSpec) -> Resource | None:
        parsed = {"python": None, "channels": [], "conda_packages": [], "pip_packages": []}
        build = self._build_context(spec)
        if spec.build is not None and build is None:
            return None
        if spec.conda_file is None:
            if spec.build is None and not spec.inference_config:  # a custom container's image serves as it is
                self.diags.append(
                    Diagnostic(
                        f"environment '{spec.name}' has no conda_file: the local runtime installs no packages for it"
                        + (f" (the image {spec.image} is not used)" if spec.image else ""),
                        "Add 'conda_file:' listing the packages score.py imports.",
                        severity="warning",
                        **spec.where.at(),
                    )
                )
        else:
            if not spec.conda_file.is_file():
                return None
            key = str(spec.conda_file)
            if key not in self.conda:
                from mlctl.requirements import read_conda_file  # packaging: imported when a conda file is read

                hashed, _ = self._hash(spec.conda_file, spec.where.at("conda_file"))
                self.conda[key] = read_conda_file(spec.conda_file, self.diags) if hashed else None
            parsed = self.conda[key]
            if parsed is None:
                return None
        return self._environment_resources(spec, parsed, build)

    def _environment_resources(self, spec: EnvSpec, parsed: dict, build: dict | None) -> Resource:
        """The environment resource and its image from the parsed packages (registered once per name)."""
        from mlctl.binarybounds import numpy_bound

        # numpy<2 added for conda pins that predate numpy 2 (mlctl.binarybounds): part of what is built
        bound, build_notes = numpy_bound(parsed["conda_packages"], parsed["pip_packages"])
        routes = {"inference_config": spec.inference_config} if spec.inference_config else {}
        spec_digest = json_digest(
            {
                **parsed,
                "image": spec.image,
                **({"build": build} if build else {}),
                **({"added": bound} if bound else {}),
                **routes,
            }
        )
        attrs = {
            "name": spec.name,
            "version": spec.version or derive_version(spec_digest),
            "conda_file": str(spec.conda_file) if spec.conda_file else None,
            "image": spec.image,
            **parsed,
            "description": spec.description,
            "tags": spec.tags,
            "spec_digest": spec_digest,
            **routes,
        }
        if build:
            attrs.update(
                build_context=str(spec.build[0]), dockerfile_path=build["dockerfile_path"], build_digest=build["digest"]
            )
        res = Resource(
            Address(Kind.ENVIRONMENT, spec.name),
            attrs,
            resource_digest(Kind.ENVIRONMENT, attrs),
            (),
            {},
            tuple(f for f, _ in spec.ignored),
            spec.where.source(),
        )
        if self._register(Kind.ENVIRONMENT, spec, res) is not res:
            return self.assets[(Kind.ENVIRONMENT, spec.name)][0]
        image = {
            "environment": spec.name,
            "spec_digest": spec_digest,
            "python": parsed["python"],
            "conda_packages": parsed["conda_packages"],
            "pip_packages": parsed["pip_packages"],
            **routes,
        }
        if spec.image:
            image["base_image"] = spec.image
        if build_notes:
            image["build_notes"] = list(build_notes)
        if build:
            image.update(build_context=str(spec.build[0]), dockerfile_path=build["dockerfile_path"])
        self.resources[Address(Kind.IMAGE, spec.name)] = Resource(
            Address(Kind.IMAGE, spec.name),
            image,
            resource_digest(Kind.IMAGE, image),
            (res.address,),
            {},
            (),
            res.source,
        )
        return res

    def _build_context(self, spec: EnvSpec) -> dict | None:
        """{"digest", "dockerfile_path"} of an environment's build context (its files hashed), None
        when it has none or it cannot be read (then with an error)."""
        if spec.build is None:
            return None
        folder, dockerfile = spec.build
        digest, _ = self._hash(folder, spec.where.at("build", "path"), "context")
        return {"digest": digest, "dockerfile_path": dockerfile} if digest else None

    def resolve(self, ref: Ref) -> Resource | None:
        """The model / environment resource a reference names, or None (with an error unless already reported)."""
        kind = Kind(ref.kind)
        found = self.assets.get((kind, ref.name))
        if found is None:
            if ref.name in self.specs.invalid[ref.kind] or self.specs.incomplete:
                return None
            known = sorted(n for k, n in self.assets if k is kind)
            hint = f"Define it in a {ref.kind} YAML (with the Azure $schema URL or 'kind: {ref.kind}')"
            if ref.kind == "environment" and ref.name.lower().startswith("azureml-"):
                hint = (
                    "Azure curated environments are not available to mlctl: write an environment YAML with a conda_file"
                )
            elif self.specs.explicit:
                hint += ", and name that file with -f too (only the -f files are read)"
            self.diags.append(
                Diagnostic(
                    f"{ref.kind} reference '{ref.text}' names unknown {ref.kind} '{ref.name}'",
                    hint + "." + did_you_mean(ref.name, known),
                    **ref.where.at(),
                )
            )
            return None
        res, spec = found
        if ref.version is not None and ref.version != res.attributes["version"]:
            self.diags.append(
                Diagnostic(
                    f"{ref.kind} reference '{ref.text}' names version {ref.version}, but the configuration defines "
                    f"{ref.name}:{res.attributes['version']} (at {spec.where.text()})",
                    f"Refer to {ref.name}:{res.attributes['version']} or azureml:{ref.name}@latest.",
                    **ref.where.at(),
                )
            )
            return None
        return res

    def build_endpoint(self, spec) -> None:
        attrs = {
            "name": spec.name,
            "auth_mode": spec.auth_mode,
            "port": spec.port,
            "description": spec.description,
            "tags": spec.tags,
        }
        address = Address(Kind.ENDPOINT, spec.name)
        if address not in self.resources:
            listen = self.listen.for_endpoint(spec.name)
            attrs.update(listen_attributes(listen, spec, self.boundary or "/", self.diags, self.inputs))
            self.resources[address] = Resource(
                address,
                attrs,
                resource_digest(address.kind, attrs),
                (),
                {},
                tuple(f for f, _ in spec.ignored),
                spec.where.source(),
            )

    def check_listen_names(self) -> None:
        """Each per-endpoint listen override names an endpoint of the project."""
        known = sorted(e.name for e in self.specs.endpoints)
        for name, where in self.listen.named.items():
            if name not in known and not self.specs.incomplete:
                self.diags.append(
                    Diagnostic(
                        f"listen settings for endpoint {name!r}, which the project does not define",
                        f"Endpoints: {', '.join(known) or 'none'}." + did_you_mean(name, known),
                        **where,
                    )
                )

    def build_deployment(self, spec: DeploymentSpec) -> None:
        address = Address(Kind.DEPLOYMENT, f"{spec.endpoint}.{spec.name}")
        if Address(Kind.ENDPOINT, spec.endpoint) not in self.resources or address in self.resources:
            return  # unknown endpoint or duplicate: reported by the checks
        model = self.resolve(spec.model) if isinstance(spec.model, Ref) else self.build_model(spec.model)
        env = None
        if isinstance(spec.environment, Ref):
            env = self.resolve(spec.environment)
        elif spec.environment is not None:
            env = self.build_environment(spec.environment)
        code, script = spec.code, spec.scoring_script
        routes = (env.attributes.get("inference_config") if env else None) or None
        if routes and not self._custom_container_runs_here(spec, env):
            return
        if code is None and routes:  # a custom container: its image serves, no scoring script
            code, script = mlflowmodel.NO_CODE, mlflowmodel.NO_SCRIPT
        if code is None:  # no code_configuration: Azure's no-code deployment of an MLflow model
            if model is None:
                return
            if model.attributes["type"] != mlflowmodel.MODEL_TYPE:
                self.diags.append(
                    Diagnostic(
                        "missing required field 'code_configuration'",
                        "Add 'code_configuration: {code: FOLDER, scoring_script: score.py}' (only a model of "
                        f"type mlflow_model is served without a script; '{model.attributes['name']}' is "
                        f"{model.attributes['type']}).",
                        **spec.where.at("code_configuration"),
                    )
                )
                return
            if spec.environment is None:
                env = self.build_mlflow_environment(spec, model)
                if env is None:
                    return
            code, script = mlflowmodel.CODE, mlflowmodel.SCRIPT
        builtin = code in (mlflowmodel.CODE, mlflowmodel.NO_CODE)
        code_digest, code_files = self._hash(code, spec.where.at("code_configuration", "code"), builtin=builtin)
        if model is None or code_digest is None or (spec.environment is not None and env is None):
            return
        attrs = {
            "endpoint": spec.endpoint,
            "name": spec.name,
            "model": model.attributes["name"],
            "model_version": model.attributes["version"],
            "model_digest": model.attributes["content_digest"],
            "code": str(code),
            "code_digest": code_digest,
            "scoring_script": script,
            "environment": env.attributes["name"] if env else None,
            "image_digest": env.attributes["spec_digest"] if env else None,
            **spec.settings,
            **({"inference_config": routes} if routes else {}),
        }
        if "scale_settings" in attrs and "scale_settings.type" in honoured_fields("deployment", self.runtime):
            attrs["instance_count"] = scalesettings.initial_count(attrs["scale_settings"])
        else:  # a fixed count (on a runtime that does not autoscale, the plan notes the fields as ignored)
            attrs.pop("scale_settings", None)
        if spec.kubernetes and spec.instance_type:
            self._kubernetes_instance_type_note(spec)
        elif "instance_type" in honoured_fields("deployment", self.runtime):
            attrs["instance_type"] = spec.instance_type
            self._check_instance_type(spec)
        depends = [Address(Kind.ENDPOINT, spec.endpoint), model.address]
        if env is not None:
            depends.append(Address(Kind.IMAGE, env.attributes["name"]))
        files = {**{"code/" + rel: sha for rel, sha in code_files.items()}, **model.files}
        self.resources[address] = Resource(
            address,
            attrs,
            resource_digest(address.kind, attrs),
            tuple(depends),
            files,
            tuple(f for f, _ in spec.ignored),
            spec.where.source(),
        )

    def build_mlflow_environment(self, spec: DeploymentSpec, model: Resource) -> Resource | None:
        """The environment an MLflow model's MLmodel names, for a deployment that gives none: named
        MODEL-mlflow-env, its packages from the model's conda.yaml or requirements.txt (a note says which)."""
        where = spec.where.at("model")
        found = mlflowmodel.mlflow_environment(Path(model.attributes["path"]), where, self.diags)
        if found is None:
            return None
        parsed, notes = found
        name = f"{model.attributes['name']}-mlflow-env"
        self.diags.append(
            Diagnostic(
                f"deployment '{spec.name}' serves MLflow model '{model.attributes['name']}' without a script: "
                f"mlctl's built-in score.py (mlflow.pyfunc), environment '{name}': " + "; ".join(notes),
                severity="note",
                **where,
            )
        )
        env_spec = EnvSpec(
            name, None, None, None, f"the environment of MLflow model {model.attributes['name']}", {}, spec.where
        )
        return self._environment_resources(env_spec, parsed, None)

    def _custom_container_runs_here(self, spec: DeploymentSpec, env: Resource) -> bool:
        """A custom container (an environment with inference_config) runs on the docker runtime only; on
        another an error at the environment's inference_config (file, line, field)."""
        if "inference_config" in honoured_fields("environment", self.runtime):
            return True
        env_spec = self.assets[(Kind.ENVIRONMENT, env.attributes["name"])][1]
        self.diags.append(
            Diagnostic(
                f"deployment '{spec.name}' runs a custom container (environment '{env.attributes['name']}' has "
                f"inference_config), which the {self.runtime or 'local'} runtime cannot run: it serves score.py "
                "in a virtualenv, not an image's own server",
                "Apply it with the docker runtime (runtime: docker in mlctl.yaml, or --runtime docker), or give "
                "the deployment a code_configuration and an environment with a conda_file instead.",
                **env_spec.where.at("inference_config"),
            )
        )
        return False

    def _kubernetes_instance_type_note(self, spec: DeploymentSpec) -> None:
        """A note: a Kubernetes deployment's instance_type names one of its cluster's instance types (a
        resource profile), which no table here describes; resources, else the runtime's default, size it."""
        sized = "its resources" if spec.settings.get("resources") else "the runtime's default"
        self.diags.append(
            Diagnostic(
                f"deployment '{spec.name}': instance_type '{spec.instance_type}' names a Kubernetes instance type "
                f"(a resource profile of the cluster), which mlctl has no table for: each instance is sized by {sized}",
                severity="note",
                **spec.where.at("instance_type"),
            )
        )

    def _check_instance_type(self, spec: DeploymentSpec) -> None:
        """A warning for a VM size mlctl does not know (its instances then run without limits)."""
        from mlctl.instance_types import lookup

        if spec.instance_type and lookup(spec.instance_type) is None:
            self.diags.append(
                Diagnostic(
                    f"instance_type '{spec.instance_type}' is not an Azure VM size mlctl knows: the {self.runtime} "
                    f"runtime sets no CPU or memory limit for deployment '{spec.name}'",
                    "Name a size of Azure's managed online endpoints SKU list (e.g. Standard_DS3_v2), or leave it out.",
                    severity="warning",
                    **spec.where.at("instance_type"),
                )
            )

    def build_traffic(self, spec, deployments: list[Address]) -> None:
        address = Address(Kind.TRAFFIC, spec.name)
        if address in self.resources:
            return
        attrs = {"endpoint": spec.name, "traffic": dict(spec.traffic), "mirror_traffic": dict(spec.mirror_traffic)}
        self.resources[address] = Resource(
            address,
            attrs,
            resource_digest(address.kind, attrs),
            (Address(Kind.ENDPOINT, spec.name), *deployments),
            {},
            (),
            replace(spec.where.source(), line=spec.where.doc.line(("traffic",))),
        )
