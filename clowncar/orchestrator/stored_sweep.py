"""A sweep as the store holds it: its row, the spec it was run with, and whether a driver holds it now. Read by the
sweep commands (status, resume, rerun), `sweep status`'s study lines, a rerun's seed lines and a stopped sweep's clean-up."""

from __future__ import annotations

import json
from typing import Any

from clowncar.errors import ClownCarError


def stored_sweep(name: str, url: str) -> dict[str, Any]:
    from clowncar.store import open_store

    with open_store(url, create=False) as store:
        sweep = store.get_sweep(name)
        if not sweep:
            raise ClownCarError(f"no sweep named '{name}' in {store.url}{store.no_sweep_hint(name)}")
    return sweep


def stored_spec(name: str, url: str) -> Any:
    return spec_of(stored_sweep(name, url))


def spec_of(sweep: dict[str, Any]) -> Any:
    """The spec a clowncar sweep was run with (its store row, `stored_sweep`)."""
    from clowncar.orchestrator.spec import spec_from_dict

    name = sweep["name"]
    if sweep["source"] == "import":
        # an import stores what its files said, not a spec: there is no search to continue and no base config
        raise ClownCarError(f"sweep '{name}' was imported from files, so it has no sweep spec to resume or rerun "
                            f"from: `clowncar sweep rerun {name} --base SPEC` reruns its best configs from a spec "
                            f"of yours (`clowncar store ls {name}` lists its trials)")
    spec = sweep["spec"]
    return spec_from_dict(json.loads(spec) if isinstance(spec, str) else spec)


def refuse_while_driven(name: str, url: str) -> None:
    from clowncar.orchestrator.lease import refuse_if_driven
    from clowncar.store import open_store

    with open_store(url, create=False) as store:
        refuse_if_driven(store, name)
