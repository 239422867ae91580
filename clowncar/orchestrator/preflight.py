"""Before an embedded sweep starts: is the data its trials will read on this machine, and has it the GPUs a trial
asks for?

A dataset name with a typo, or shards never fetched, used to cost a whole sweep: every trial started, failed in
its first seconds with the same DataError, and the sweep ended "done" with its budget spent and its name taken.
Under embedded Ray the trials run here and see this machine's data directory, so the driver checks it first:
every dataset and tokenizer a trial of the spec can name (the base config, each named and enqueued point, each
value the space gives a `data.*` key), their train and validation shards (headers validated) and the tokenizer
file. On a cluster (`--address`) the data lives on the workers, which the driver cannot see; there each trial
checks its own and a failure is recorded with its reason. A spec whose worker is not `clowncar.worker` reads
data its own way and is not checked.

A trial that asks for more GPUs (`resources.gpus`) than embedded Ray offers never starts: Ray waits for a node
that could hold it, and the sweep printed its plan and then nothing, forever. So an embedded sweep is refused
before it starts (`check_embedded_gpus`), with the count embedded Ray would get: `--num-gpus`, else the GPUs this
machine shows, which is then what Ray is started with.

On a cluster the same trial is not refused (an autoscaler may add a node that holds it), but it would wait in the
same silence: the driver says so once, right after it joins (`warn_of_missing_gpu_node`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from clowncar.errors import ConfigError, DataError
from clowncar.orchestrator.spec import POINT_KEY, SweepSpec
from clowncar.words import counted

if TYPE_CHECKING:
    from clowncar.settings import Settings

DEFAULT_WORKER = "clowncar.worker"


def data_params(spec: SweepSpec) -> list[dict[str, object]]:
    """Sampled parameters, one set per data choice a trial can make. Every trial takes a named point when the
    spec has points, and a value for each unconditional `data.*` key of the space, so the base's own value of
    such a key is never read: each point (or the base) with the first value of those keys; then every other
    value of each `data.*` key; then every enqueued point."""
    data_keys = {k: p for k, p in spec.space.items() if k.startswith("data.") and p.values is not None}
    always = {k: p.values[0] for k, p in data_keys.items() if p.when is None and p.values}
    anchors: list[dict[str, object]] = [{POINT_KEY: name} for name in spec.points] or [{}]
    sets = [{**anchor, **always} for anchor in anchors]
    for key, param in data_keys.items():
        sets += [{**sets[0], key: value} for value in (param.values or [])[1 if key in always else 0:]]
    sets += [{**always, **point} for point in spec.enqueue]
    return sets


def data_sources(spec: SweepSpec) -> list[tuple[str, str, str, str]]:
    """(dataset, train_glob, val_glob, tokenizer) of every data choice, each once, in the order first named."""
    seen: dict[tuple[str, str, str, str], None] = {}
    for params in data_params(spec):
        try:
            data = spec.trial_config(params).data
        except ConfigError:
            continue  # a point that makes no valid config is refused with its own reason elsewhere
        seen[(data.dataset, data.train_glob, data.val_glob, data.tokenizer)] = None
    return list(seen)


def check_local_data(spec: SweepSpec) -> None:
    """DataError (one line, naming the sweep and what is missing) when a trial of `spec` would not find its data
    on this machine."""
    _checked_sources(spec)


def _checked_sources(spec: SweepSpec) -> list[tuple[str, str, str, str]]:
    """`check_local_data`, returning the sources it checked (none for a worker that reads data its own way)."""
    if spec.worker.module != DEFAULT_WORKER:
        return []
    from clowncar.settings import load_settings

    settings = load_settings()
    sources = data_sources(spec)
    try:
        for source in sources:
            _check_source(settings, *source)
    except DataError as err:
        raise DataError(f"sweep {spec.name}: {err}") from None
    return sources


def _check_source(settings: Settings, dataset: str, train_glob: str, val_glob: str, tokenizer: str) -> None:
    from clowncar.data.paths import dataset_not_found
    from clowncar.data.record import check_encoded_with, check_shard_record
    from clowncar.data.shards import not_a_shard_directory, read_header, require_shards
    from clowncar.data.tokenizer import load_tokenizer

    directory = settings.dataset_dir(dataset)
    if directory.exists() and not directory.is_dir():  # a shard or another file named where a folder belongs
        raise DataError(not_a_shard_directory(directory))
    if not directory.is_dir():
        raise DataError(dataset_not_found(dataset, directory))
    for split, pattern in (("train", train_glob), ("validation", val_glob)):
        for shard in require_shards(directory, pattern, split):
            read_header(shard)
    check_shard_record(directory)  # a shard lost since the build or fetch would change what every trial measures
    load_tokenizer(settings.tokenizer_path(tokenizer))
    check_encoded_with(directory, settings.tokenizer_path(tokenizer))


def offered_gpus(num_gpus: int | None) -> int:
    """The GPUs embedded Ray offers: `--num-gpus` when given, else those this machine shows (`doctor.gpu_names`:
    CUDA devices torch sees, CUDA_VISIBLE_DEVICES respected)."""
    if num_gpus is not None:
        return num_gpus
    from clowncar.doctor import gpu_names

    return len(gpu_names()[1])


def _gpu_shortfall(spec: SweepSpec, num_gpus: int | None) -> str | None:
    """Why no trial of `spec` could start on embedded Ray offering `num_gpus` (None: detected), or None."""
    need = spec.resources.gpus
    if need == 0:
        return None
    have = offered_gpus(num_gpus)
    if need <= have:
        return None
    where = f"embedded Ray is given {have} (--num-gpus {num_gpus})" if num_gpus is not None else (
        f"this machine has {have}")
    return f"trials need {counted(need, 'GPU')} per trial; {where}"


def check_embedded_gpus(spec: SweepSpec, num_gpus: int | None) -> int | None:
    """ConfigError (one line, exit 2) when a trial of `spec` needs more GPUs than embedded Ray would offer, so
    that no trial could ever start (Ray would wait for them in silence); else the GPU count to start embedded Ray
    with: `num_gpus` as given for a CPU sweep, the count checked here for a GPU one."""
    why = _gpu_shortfall(spec, num_gpus)
    if why is not None:
        raise ConfigError(f"sweep {spec.name}: {why}, so no trial could start; run it where its GPUs are (a "
                          f"machine that has them, or a cluster with --address), or ask for fewer "
                          f"(resources.gpus)")
    return num_gpus if spec.resources.gpus == 0 else offered_gpus(num_gpus)


def node_gpus(nodes: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Whole GPUs of each alive node in a `ray.nodes()` list, by node id (what the GPU ledger books)."""
    return {n["NodeID"]: int(n.get("Resources", {}).get("GPU", 0)) for n in nodes if n.get("Alive")}


def missing_gpu_node(spec: SweepSpec, nodes: Iterable[Mapping[str, Any]]) -> str | None:
    """The warning for a cluster none of whose alive `nodes` (`ray.nodes()`) offers the GPUs one trial of `spec`
    needs (all of a trial's GPUs are on one node), or None. A warning, not a refusal: a node may yet join."""
    need = spec.resources.gpus
    most = max(node_gpus(nodes).values(), default=0)
    if need == 0 or need <= most:
        return None
    return (f"clowncar: warning: sweep {spec.name}: no node of the cluster offers {counted(need, 'GPU')} (the most "
            f"on one node: {most}); its trials wait until such a node joins")


def warn_of_missing_gpu_node(spec: SweepSpec) -> None:
    """Print `missing_gpu_node`'s warning, if any, for the cluster this driver has joined (on stderr, so that
    `--quiet`, which silences progress, keeps it). A cluster that cannot list its nodes is not warned about."""
    import sys

    import ray

    try:
        nodes = ray.nodes()
    except Exception:  # the sweep goes on; Ray's own errors, if any, come where it needs the nodes
        return
    if (line := missing_gpu_node(spec, nodes)) is not None:
        print(line, file=sys.stderr, flush=True)


def gpu_line(spec: SweepSpec) -> str | None:
    """What `sweep plan` says of a GPU sweep's GPUs on this machine; nothing for a CPU sweep."""
    if spec.resources.gpus == 0:
        return None
    why = _gpu_shortfall(spec, None)
    if why is not None:
        return (f"  GPUs: {why}: an embedded `sweep run` refuses the sweep (--num-gpus sets what it offers); a "
                "cluster (--address) needs a node with that many")
    return f"  GPUs: {spec.resources.gpus} per trial; this machine has {offered_gpus(None)}"


def data_line(spec: SweepSpec) -> str | None:
    """What `sweep plan` says of the data: found on this machine (and which), or what is missing here, which an
    embedded `sweep run` would refuse; nothing for a worker that reads data its own way."""
    try:
        sources = _checked_sources(spec)
    except DataError as err:
        what = str(err).removeprefix(f"sweep {spec.name}: ")
        return (f"  data: missing on this machine: {what}; an embedded `sweep run` refuses the sweep, and on a "
                "cluster every worker needs the data")
    if not sources:
        return None
    datasets = ", ".join(dict.fromkeys(src[0] for src in sources))
    tokenizers = ", ".join(dict.fromkeys(src[3] for src in sources))
    return f"  data: on this machine: {datasets} (tokenizer {tokenizers})"
