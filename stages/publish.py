"""publish: a trained generator -> a named model in models/pretrained/ (file, card, sha256).

    ppe publish --model run/generator.pt --name iphone-dped-mini \\
        --train-metrics run/train.json --eval-metrics run/eval.json --data "DPED iPhone ..."

Outside the DAG, like export: how the shipped model gets in (tools/pretrained.sh runs the
whole recipe and then this). Every figure of the model card comes from the run's own files;
the registry entry carries the sha256 that enhance checks on every load.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from stages.common import reports_write_errors


@reports_write_errors
def main(
    model: Path = typer.Option(..., help="trained generator checkpoint (the train stage's)"),
    name: str = typer.Option(..., help="registered name, e.g. iphone-dped-mini"),
    train_metrics: Path = typer.Option(..., help="the run's train.json (steps, seconds)"),
    eval_metrics: Path = typer.Option(..., help="the run's eval.json (raw test-pair scores)"),
    data: str = typer.Option(..., help="what it was trained on, for the model card"),
    command: str = typer.Option("", help="the command that regenerates it, for the card"),
    summary: str = typer.Option("", help="one line for the registry"),
    directory: Path = typer.Option(None, help="registry folder (default models/pretrained)"),
) -> None:
    """Register a trained generator under a name, with its model card and sha256."""
    from gan.checkpoint import CheckpointError, read_generator
    from gan.deploy.pretrained import PRETRAINED_DIR, model_card, publish
    from stages.common import fail

    try:
        checkpoint = read_generator(model)
        train = _read_json(train_metrics)
        raw = _read_json(eval_metrics).get("raw")
        if not raw:
            raise ValueError(f"{eval_metrics}: no 'raw' scores (the evaluate stage's metrics?)")
        card = model_card(name, checkpoint, train, raw, data, command)
        target = publish(model, name, card, summary or data.splitlines()[0],
                         directory or PRETRAINED_DIR)
    except (CheckpointError, ValueError, OSError) as exc:
        fail(str(exc))
    ours = raw["ours"]
    typer.echo(f"{target}: registered as {name!r} ({ours['psnr']:.2f} dB / "
               f"{ours['ms_ssim']:.4f} on {ours.get('patches', '?')} raw test pairs)")


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return value


if __name__ == "__main__":
    typer.run(main)
