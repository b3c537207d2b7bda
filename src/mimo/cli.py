"""The ``mimo`` command: one typer application; each subcommand lives beside the code it drives."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="mimo", help="MIMO-Med: visual-referring, pixel-grounding medical VLM.", no_args_is_help=True
)


def _register() -> None:
    from mimo.data.cli import app as data_app

    app.add_typer(data_app, name="data", help="Build, validate, inspect MIMOSeg-style records.")
    from mimo.train.cli import train

    app.command("train")(train)
    from mimo.train.plan import plan

    app.command("plan")(plan)
    from mimo.infer.cli import chat, demo, evaluate, segment_volume

    app.command("chat")(chat)
    app.command("segment-volume")(segment_volume)
    app.command("eval")(evaluate)
    app.command("demo")(demo)
    from mimo.serve.cli import serve

    app.command("serve")(serve)


_register()

if __name__ == "__main__":
    app()
