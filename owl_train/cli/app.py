"""The ``owl-train`` Typer app with its ``version`` and ``init-tiny`` commands; the stage, eval and
infer commands register on :data:`app` from :mod:`owl_train.cli.train`."""

from __future__ import annotations

import typer

from owl_train.model.variants import DEFAULT_VARIANT

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Owl-VL trainer: a compact M-RoPE vision-language model with a point token, and its training stages.")


@app.callback()
def main(
    local_rank: int = typer.Option(None, "--local_rank", "--local-rank", hidden=True,
                                   help="Set by the deepspeed launcher (its processes read LOCAL_RANK)."),
) -> None:
    """Owl-VL trainer."""


@app.command()
def version() -> None:
    """Print the trainer's version."""
    from owl_train import __version__

    typer.echo(__version__)


@app.command("init-tiny")
def init_tiny_cmd(
    out_dir: str = typer.Argument(..., help="directory to write (Hugging Face Qwen2-VL layout + tokenizer)"),
    vocab_from: str = typer.Option(None, "--vocab-from", help="UTF-8 text file to train the BPE tokenizer on"),
    seed: int = typer.Option(0, help="seed of the random weights"),
    force: bool = typer.Option(False, "--force", help="write into a non-empty OUT_DIR (replacing its model files)"),
    variant: str = typer.Option(None, "--variant", help="point-grounding preset (owl_train.model.variants.VARIANTS: "
                                "a_text, b_image, c_interleaved, d_focus, e_fovea, f_patch_code, cd, cdf, cdef, ...); "
                                f"default: {DEFAULT_VARIANT}"),
) -> None:
    """Write a tiny random Owl-VL model and its byte-level BPE tokenizer to OUT_DIR."""
    from pathlib import Path

    from owl_train.model.tiny import init_tiny
    from owl_train.model.variants import DEFAULT_VARIANT, VARIANTS

    variant = DEFAULT_VARIANT if variant is None else variant  # an empty --variant "" is an error, not the default
    if variant not in VARIANTS:
        typer.secho(f"error: unknown --variant {variant!r}: use one of {', '.join(VARIANTS)}", fg="red", err=True)
        raise typer.Exit(code=2)

    target = Path(out_dir)
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not force)):
        typer.secho(f"error: {target} exists and is not an empty folder; pick a new folder "
                    "(or pass --force to overwrite its model files)", fg="red", err=True)
        raise typer.Exit(code=2)
    try:
        path = init_tiny(out_dir, vocab_from=vocab_from, seed=seed, variant=variant)
    except (ValueError, OSError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(code=2)
    typer.echo(f"wrote tiny Owl-VL model ({variant}) and tokenizer to {path}")
