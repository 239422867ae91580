"""The KubeRay and cluster-launcher recipes carry the fields clowncar relies on, and no recipe turns Ray's token
authentication off."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml


def containers(pod_template: dict[str, Any], init: bool = False) -> list[dict[str, Any]]:
    spec = pod_template["spec"]
    return list(spec.get("containers", [])) + (list(spec.get("initContainers", [])) if init else [])


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def ray_containers(rc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "head", containers(rc["spec"]["headGroupSpec"]["template"])[0]
    for group in rc["spec"]["workerGroupSpecs"]:
        yield group["groupName"], containers(group["template"])[0]


# -- KubeRay ------------------------------------------------------------------------------------------------------

def test_raycluster_kind_and_api(raycluster: dict[str, Any]) -> None:
    assert raycluster["apiVersion"] == "ray.io/v1"
    assert raycluster["kind"] == "RayCluster"
    assert raycluster["spec"]["rayVersion"].startswith("2.")


def test_raycluster_has_an_8_gpu_worker_group(raycluster: dict[str, Any]) -> None:
    groups = [g for g in raycluster["spec"]["workerGroupSpecs"]
              if str(g["rayStartParams"].get("num-gpus")) == "8"]
    assert groups, "no worker group starts Ray with num-gpus 8"
    for g in groups:
        res = containers(g["template"])[0]["resources"]
        assert int(res["limits"]["nvidia.com/gpu"]) == 8
        assert int(res["requests"].get("nvidia.com/gpu", 8)) == 8


def test_raycluster_head_reads_the_store_url_from_a_secret(raycluster: dict[str, Any]) -> None:
    pod = raycluster["spec"]["headGroupSpec"]["template"]["spec"]
    head, dash = containers(raycluster["spec"]["headGroupSpec"]["template"])
    # The Ray container: a file from the Secret, never a variable (Ray jobs, actors and workers inherit those).
    assert "CLOWNCAR_STORE" not in env_of(head)
    path = env_of(head)["CLOWNCAR_STORE_FILE"]["value"]
    mount = next(m for m in head["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    assert mount.get("readOnly") is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "clowncar-store" and path.endswith("/url")
    assert volume["secret"]["defaultMode"] & 0o077 == 0  # the pod's fsGroup may add group read, nobody else
    # optuna-dashboard (not a Ray process) takes it as a Secret reference.
    ref = env_of(dash)["CLOWNCAR_STORE"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == ("clowncar-store", "url") and "value" not in env_of(dash)["CLOWNCAR_STORE"]


def test_raycluster_keeps_token_auth_on_every_ray_node(raycluster: dict[str, Any]) -> None:
    seen = 0
    for name, c in ray_containers(raycluster):
        env = env_of(c)
        assert env["RAY_AUTH_MODE"]["value"] == "token", name
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["key"], name
        seen += 1
    assert seen >= 2


def test_raycluster_workers_get_no_database_credentials_and_nothing_is_exposed(raycluster: dict[str, Any]) -> None:
    for group in raycluster["spec"]["workerGroupSpecs"]:
        for c in containers(group["template"], init=True):
            assert not any(k.startswith("CLOWNCAR_STORE") for k in env_of(c)), c["name"]
        assert not any("secret" in v for v in group["template"]["spec"].get("volumes", [])), group["groupName"]
    head = raycluster["spec"]["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"
    dash = [c for c in containers(head["template"]) if c["name"] == "optuna-dashboard"]
    assert dash and dash[0]["command"][dash[0]["command"].index("--host") + 1] == "127.0.0.1"
    for pod in [head["template"]] + [g["template"] for g in raycluster["spec"]["workerGroupSpecs"]]:
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_raycluster_fetches_the_fineweb_shards_on_every_worker(raycluster: dict[str, Any]) -> None:
    for group in raycluster["spec"]["workerGroupSpecs"]:
        inits = group["template"]["spec"].get("initContainers", [])
        cmds = [" ".join(c["command"]) for c in inits]
        assert any(cmd.startswith("clowncar data fetch-fineweb --variant sp1024 --train-shards") for cmd in cmds)


# -- cluster launcher -----------------------------------------------------------------------------------------------

def test_launcher_declares_an_8_gpu_node_type(launcher: dict[str, Any]) -> None:
    assert launcher["cluster_name"]
    assert launcher["provider"]["type"] in {"aws", "gcp", "azure"}
    types = launcher["available_node_types"]
    assert launcher["head_node_type"] in types
    gpu = [t for t in types.values() if t.get("resources", {}).get("GPU") == 8]
    assert gpu and gpu[0]["node_config"]["InstanceType"] == "p5.48xlarge"
    assert launcher["docker"]["image"]


def test_launcher_passes_rays_own_config_schema(launcher: dict[str, Any]) -> None:
    import copy

    # The same defaults-filling and JSON-schema check that `ray up` runs before it starts anything.
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(launcher)))
    broken = copy.deepcopy(launcher)
    broken["available_node_types"]["gpu_8xh100"]["gpus"] = 8  # not a launcher field: must be rejected
    with pytest.raises(Exception, match="gpus"):
        validate_config(prepare_config(broken))


def test_launcher_starts_every_node_with_token_auth_and_a_loopback_dashboard(launcher: dict[str, Any]) -> None:
    head = " ".join(launcher["head_start_ray_commands"])
    worker = " ".join(launcher["worker_start_ray_commands"])
    for cmds in (head, worker):
        assert "RAY_AUTH_MODE=token" in cmds
        assert "RAY_AUTH_TOKEN_PATH=" in cmds
    assert "--dashboard-host=127.0.0.1" in head
    assert "--host 127.0.0.1" in head  # optuna-dashboard
    assert "CLOWNCAR_STORE" not in worker


def test_launcher_keeps_the_store_url_on_the_head_in_a_file(launcher: dict[str, Any], repo: Path) -> None:
    start = launcher["head_start_ray_commands"]
    ray_start = next(c for c in start if "ray start --head" in c)
    # Ray's own environment (inherited by every job, actor and worker) names the file, never the URL.
    assert "CLOWNCAR_STORE_FILE=$HOME/clowncar-store/store_url" in ray_start
    assert "CLOWNCAR_STORE=" not in ray_start
    # file_mounts reach every node: they carry the Ray token, not the store URL.
    assert not any("store_url" in k or "store_url" in v or v.rstrip("/").endswith("secrets")
                   for k, v in launcher["file_mounts"].items())
    header = (repo / "docker/cluster/aws.yaml").read_text().split("\ncluster_name:", 1)[0]
    assert "ray rsync-up docker/cluster/aws.yaml docker/cluster/secrets/store_url '~/clowncar-store/store_url'" \
        in header  # to the head only


def test_launcher_secrets_are_git_ignored(launcher: dict[str, Any], git_ignored: Callable[[str], bool]) -> None:
    for local in launcher["file_mounts"].values():
        assert git_ignored(local.removeprefix("./")), local
    assert git_ignored("docker/cluster/secrets/store_url")


def test_launcher_fetches_the_fineweb_shards_on_the_gpu_nodes(launcher: dict[str, Any]) -> None:
    assert any(c.startswith("clowncar data fetch-fineweb --variant sp1024 --train-shards")
               for c in launcher["worker_setup_commands"])


# -- every recipe -------------------------------------------------------------------------------------------------

def recipe_files(repo: Path) -> list[Path]:
    return sorted(p for d in ("docker", "sweeps") if (repo / d).is_dir()
                  for p in (repo / d).rglob("*") if p.suffix in {".yaml", ".yml"})


def test_every_yaml_file_loads_with_the_safe_loader(repo: Path) -> None:
    files = recipe_files(repo)
    assert {"compose.yaml", "raycluster.yaml", "aws.yaml"} <= {p.name for p in files}
    for path in files:
        with open(path, encoding="utf-8") as fh:
            yaml.safe_load(fh)  # raises on anything but plain data (no python/object tags)


DISABLED = re.compile(r"RAY_AUTH_MODE\W{0,3}\s*[=:]\s*\W{0,3}disabled", re.IGNORECASE)


@pytest.mark.parametrize("text, found", [
    ("RAY_AUTH_MODE=disabled ray start", True), ("RAY_AUTH_MODE: disabled", True),
    ('"RAY_AUTH_MODE": "disabled"', True), ("RAY_AUTH_MODE=token", False)])
def test_the_disabled_auth_pattern_catches_every_spelling(text: str, found: bool) -> None:
    assert bool(DISABLED.search(text)) is found


def _env_pairs(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        if "name" in node and "value" in node:
            yield str(node["name"]), node["value"]
        for k, v in node.items():
            yield str(k), v
            yield from _env_pairs(v)
    elif isinstance(node, list):
        for item in node:
            yield from _env_pairs(item)


def test_no_recipe_disables_ray_token_auth(repo: Path) -> None:
    paths = [*recipe_files(repo), repo / "docker/Dockerfile", repo / "docker/example.env"]
    for path in paths:
        text = path.read_text()
        assert not DISABLED.search(text), f"{path} disables Ray token authentication"
        if path.suffix in {".yaml", ".yml"}:
            for key, value in _env_pairs(yaml.safe_load(text)):
                assert not (key == "RAY_AUTH_MODE" and str(value).lower() == "disabled"), path
