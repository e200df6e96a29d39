"""The pipeline's command-line interface: one Typer app, one sub-command per stage.

``python -m stages <stage>`` or the installed console command ``ppe <stage>``. Stage modules
import their heavy libraries inside the command, so ``ppe --help`` stays fast.
"""

from __future__ import annotations

import typer

from stages import download, enhance, evaluate, export, extract, publish, report, train

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Perceptual photo enhancement: the DVC pipeline's stages.")
app.command("download")(download.main)
app.command("extract")(extract.main)
app.command("train")(train.main)
app.command("evaluate")(evaluate.main)
app.command("report")(report.main)
app.command("enhance")(enhance.main)
app.command("export")(export.main)
app.command("publish")(publish.main)


def main() -> None:
    app()
