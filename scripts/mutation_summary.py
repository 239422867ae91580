"""The figures of one mutmut run (scripts/mutation.sh) for docs/testing.md, and the diffs of its survivors.

    python scripts/mutation_summary.py WORKDIR MODULE [PATTERN]
    python scripts/mutation_summary.py --table      # the markdown tables of docs/testing.md, from every run

Counts come from mutmut's own result file (WORKDIR/mutants/MODULE.meta). A timeout counts as killed (the mutant
made the tests hang, which the suite's per-test timeout turns into a failure), and so does a SIGKILL (-9: a mutant of
search.py's fault hook kills its own test process, as a fault does); a mutant no selected test reaches
counts as survived. PATTERN (fnmatch) keeps only the mutants whose names match it. Survivors listed in scripts/mutation_equivalent.txt (`name  reason`, one a line) are
equivalent: they leave the module's behaviour unchanged and so are left out of the score. The diff of every
other survivor is written to WORKDIR/survivors.txt.

mutmut's verdicts are spot-checked: a few mutants it counted killed (MUTATION_SPOT_CHECK, default 5, chosen at
random) are run again by pytest alone with the same tests. On a crowded machine a run once counted every mutant
of two modules killed, survivors included; a spot check that finds a "killed" mutant passing its tests fails the
summary (exit 1) instead of printing a score nobody should believe."""

from __future__ import annotations

import configparser
import json
import os
import random
import subprocess
import sys
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path

KILLED = {1, 3, 24, -24, -9, 152, 255, 36, 37}  # test failure, pytest internal error, timeouts, SIGKILL, type check
EQUIVALENT_LIST = Path(__file__).with_name("mutation_equivalent.txt")


def equivalent_names() -> dict[str, str]:
    out = {}
    for line in EQUIVALENT_LIST.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, why = line.partition(" ")
            out[name] = why.strip()
    return out


def summarize(work: Path, module: str, pattern: str = "*") -> dict[str, object]:
    meta = json.loads((work / "mutants" / (module + ".meta")).read_text())
    codes: dict[str, int | None] = {k: v for k, v in meta["exit_code_by_key"].items() if fnmatch(k, pattern)}
    equivalent = equivalent_names()
    kinds: Counter[str] = Counter()
    survivors: list[str] = []
    equivalents: list[str] = []
    for name, code in sorted(codes.items()):
        if code in KILLED:
            kinds["killed"] += 1
        elif code is None:
            kinds["not checked"] += 1
        elif name in equivalent:
            kinds["equivalent"] += 1
            equivalents.append(name)
        else:
            kinds["survived"] += 1
            survivors.append(name)
    total = len(codes)
    scored = total - kinds["equivalent"]
    score = kinds["killed"] / scored if scored else 1.0
    return {"module": module, "mutants": total, "killed": kinds["killed"], "survived": kinds["survived"],
            "equivalent": kinds["equivalent"], "not_checked": kinds["not checked"], "score": round(score, 4),
            "survivors": survivors, "equivalent_names": equivalents}


def write_survivor_diffs(work: Path, names: list[str]) -> None:
    with open(work / "survivors.txt", "w") as f:
        for name in names:
            diff = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=work, capture_output=True,
                                  text=True).stdout
            f.write(f"### {name}\n{diff}\n")


def spot_check(work: Path, killed: list[str], count: int) -> list[str]:
    """Of `count` random mutants mutmut counted killed, those whose tests pass when pytest runs them alone."""
    cfg = configparser.ConfigParser()
    cfg.read(work / "setup.cfg")
    args = [*cfg["mutmut"]["pytest_add_cli_args_test_selection"].split("\n"),
            *cfg["mutmut"]["pytest_add_cli_args"].split("\n")]
    args = [a.strip() for a in args if a.strip()]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    passed = []
    for name in random.sample(killed, min(count, len(killed))):
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:xdist", *args],
                             cwd=work / "mutants", env={**env, "MUTANT_UNDER_TEST": name, "PYTHONPATH": "."},
                             capture_output=True, text=True)
        if run.returncode == 0:
            passed.append(name)
    return passed


def markdown_tables(root: Path) -> str:
    """The per-module table, from every .mutation/*/summary.json (the modules run on this machine), and the
    equivalent-mutant table of docs/testing.md: every line of scripts/mutation_equivalent.txt, sorted by name (an
    equivalent name of an older summary that the list no longer holds was renumbered away, and is left out)."""
    rows = ["| module | tests run | mutants | killed | survived | equivalent | score | run took | date | command |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for f in sorted(root.glob("*/summary.json")):
        s = json.loads(f.read_text())
        label = s.get("label", s["module"])
        rows.append(f"| `{label}` | {s.get('tests', '')} | {s['mutants']} | {s['killed']} | {s['survived']} | "
                    f"{s['equivalent']} | {s['score']:.1%} | {s.get('seconds', '?')} s | {s.get('date', '')} | "
                    f"`scripts/mutation.sh {label}` |")
    eq = ["| mutant | why it cannot change the result |", "|---|---|"]
    eq += [f"| `{name}` | {why.replace('|', chr(92) + '|')} |" for name, why in sorted(equivalent_names().items())]
    return "\n".join(rows) + "\n\n" + "\n".join(eq) + "\n"


def main() -> None:
    if sys.argv[1:] == ["--table"]:
        print(markdown_tables(Path(__file__).resolve().parents[1] / ".mutation"), end="")
        return
    if len(sys.argv) not in (3, 4) or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: python scripts/mutation_summary.py WORKDIR MODULE [PATTERN] | --table  (WORKDIR: a "
                 ".mutation/<module> folder of scripts/mutation.sh)")
    work, module = Path(sys.argv[1]), sys.argv[2]
    s = summarize(work, module, *sys.argv[3:4])
    before = json.loads((work / "summary.json").read_text()) if (work / "summary.json").is_file() else {}
    # a re-summary (after listing more equivalent mutants) keeps what the run itself recorded
    s.update(label=os.environ.get("MUTATION_LABEL") or before.get("label", module),
             tests=os.environ.get("MUTATION_TESTS") or before.get("tests", ""),
             seconds=int(os.environ.get("MUTATION_SECONDS") or 0) or before.get("seconds", "?"),
             date=os.environ.get("MUTATION_DATE") or before.get("date", ""))
    write_survivor_diffs(work, s["survivors"])  # type: ignore[arg-type]
    meta = json.loads((work / "mutants" / (module + ".meta")).read_text())
    killed = [k for k, v in meta["exit_code_by_key"].items() if v in KILLED and fnmatch(k, (sys.argv[3:4] or ["*"])[0])]
    wrong = spot_check(work, killed, int(os.environ.get("MUTATION_SPOT_CHECK", "5")))
    if wrong:
        print(f"   mutmut counted {', '.join(wrong)} killed, but its tests pass when run alone: this run's "
              "figures are not trustworthy (a crowded machine?); run the module again", file=sys.stderr)
        sys.exit(1)
    print(f"   {' '.join(sys.argv[2:])}: {s['mutants']} mutants, {s['killed']} killed, {s['survived']} survived, "
          f"{s['equivalent']} equivalent, {s['not_checked']} not checked; score {s['score']:.1%}")
    if s["survivors"]:
        print(f"   survivors' diffs: {work / 'survivors.txt'}")
    (work / "summary.json").write_text(json.dumps(s, indent=1))


if __name__ == "__main__":
    main()
