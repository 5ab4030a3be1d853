"""``owl-data show``: the gallery command (registered on :data:`owl_data.cli.app.app`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from owl_data.cli.app import _fail, app, console, out_console


@app.command("show")
def show(
    corpus: Path = typer.Argument(..., help="Corpus folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Gallery folder (new, empty, or an earlier gallery: replaced)."),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="point_vqa, vqa, caption or grounding (default: all)."),
    where: Optional[str] = typer.Option(
        None, "--where", help="DuckDB predicate over the task table's columns, "
                              "e.g. \"source = 'cityscapes' AND target.category = 'car'\"."),
    limit: int = typer.Option(100, "--limit", "-n", help="At most N rows per task (1..1000000), the first by id."),
) -> None:
    """Write a static HTML gallery: each row's image with its point and box drawn, and its Q/A."""
    from owl_data.corpus.gallery import GalleryConfig, write_gallery

    try:
        rep = write_gallery(corpus, out, GalleryConfig(task=task, where=where, limit=limit))
    except (ValueError, OSError) as exc:  # GalleryError, OutputError
        _fail(exc)
    for t, why in rep.skipped.items():
        console.print(f"[yellow]--where does not apply to {t}, skipped:[/] {why}", soft_wrap=True)
    shown = ", ".join(f"{t}: {n}" for t, n in rep.rows.items()) or "none"
    out_console.print(f"rows shown: {shown}; thumbnails: {rep.thumbnails}; zooms: {rep.zooms}; "
                      f"missing images: {rep.missing_images}")
    out_console.print(f"open {rep.index}", soft_wrap=True)
