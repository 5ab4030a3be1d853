"""``owl-data export | import-llava | push``: corpora out to other tools and to the Hub.

Registered on :data:`owl_data.cli.app.app` (imported by ``owl_data/cli/__init__.py``).
Errors end in one red line and exit status 2, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from owl_data.cli.app import _fail, app, out_console


@app.command("export")
def export(
    corpus: Path = typer.Argument(..., help="Corpus folder."),
    fmt: str = typer.Option(..., "--format", "-f", help="hf (hub-ready Parquet + card) | llava | sharegpt."),
    out: Path = typer.Option(..., "--out", "-o", help="Export folder (new, or an earlier export of the same format: replaced)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier export of another format in --out."),
    coords: Optional[str] = typer.Option(
        None, "--coords",
        help="llava/sharegpt: points and boxes as text in qwen (Qwen2-VL 0-1000 integers, default), "
             "norm (decimals in [0, 1]) or pixel (pixels of the stored image)."),
) -> None:
    """Export a corpus: Hugging Face folder, LLaVA JSON or ShareGPT JSON."""
    from owl_data.export import export_corpus

    try:
        rep = export_corpus(corpus, out, fmt, coords, overwrite=overwrite)
    except (FileNotFoundError, ValueError, OSError) as exc:
        _fail(exc)
    rows = ", ".join(f"{t}/{s}: {n}" for t, per in rep.rows.items() for s, n in per.items())
    conv = f", coords {rep.coords}" if rep.coords else ""
    out_console.print(f"exported {rep.format}{conv} to {rep.out}: {rows}; images: {rep.images}")
    for reason, ids in rep.skipped.items():
        out_console.print(f"[yellow]skipped {len(ids)} row(s): {reason}[/] (ids in owl_export.json)")


@app.command("import-llava")
def import_llava(
    export_dir: Path = typer.Argument(..., metavar="EXPORT", help="An owl-data llava (or sharegpt) export folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Corpus folder to write (replaced atomically)."),
) -> None:
    """Read an LLaVA export back into a corpus (same ids, tasks and texts; geometry within one unit)."""
    from owl_data.export import import_export

    try:
        m = import_export(export_dir, out)
    except (FileNotFoundError, ValueError, OSError) as exc:
        _fail(exc)
    rows = ", ".join(f"{t}: {sum(c.values())}" for t, c in m["rows"].items() if t not in ("images", "image_refs"))
    out_console.print(f"imported {export_dir} to {out}: {rows}; rejected: {m['rejects']['total']}")
    out_console.print(f"fingerprint: {m['fingerprint']}")


@app.command("push")
def push(
    corpus: Path = typer.Argument(..., help="Corpus folder."),
    repo: str = typer.Option(..., "--repo", help="Dataset repository ORG/NAME (created when missing)."),
    private: bool = typer.Option(False, "--private", help="Create the repository private."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch to commit to (created when missing)."),
) -> None:
    """Upload the hub-ready export of a corpus to the Hugging Face Hub (token: HF_TOKEN or `hf auth login`)."""
    from owl_data.export import push_corpus

    try:
        rep = push_corpus(corpus, repo, private=private, revision=revision)
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as exc:
        _fail(exc)
    out_console.print(f"pushed to {rep.url} ({rep.revision}, commit {rep.commit})")
