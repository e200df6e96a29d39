"""publish: a trained generator -> a named model in models/pretrained/ (file, card, sha256).

    ppe publish --model run/generator.pt --name iphone-dped-mini \\
        --train-metrics run/train.json --eval-metrics run/eval.json --source run/source.json \\
        [--all-pairs] [--cv-metrics cv.json] [--params run/params.yaml]

Outside the DAG, like export: how the shipped model gets in (tools/pretrained.sh runs the
whole recipe and then this). Every figure of the model card comes from the run's own files;
the registry entry carries the sha256 that enhance checks on every load.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from stages.common import reports_write_errors
from stages.params import load_params


@reports_write_errors
def main(
    model: Path = typer.Option(..., help="trained generator checkpoint (the train stage's)"),
    name: str = typer.Option(..., help="registered name, e.g. iphone-dped-mini"),
    train_metrics: Path = typer.Option(..., help="the run's train.json (steps, seconds)"),
    eval_metrics: Path = typer.Option(..., help="the run's eval.json (raw test-pair scores)"),
    data: str = typer.Option("", help="what it was trained on, for the model card (with "
                                      "--source: added after the text built from it)"),
    source: Path = typer.Option(None, help="the run's source.json (download stage): the card "
                                           "states its pair counts and split"),
    all_pairs: bool = typer.Option(
        False, "--all-pairs", help="the model was trained on the test pairs too "
                                   "(tools/pretrained.sh ALL_PAIRS=1): the card shows the "
                                   "evaluate scores as seen-pair scores, not as a test"),
    cv_metrics: Path = typer.Option(
        None, help="a cross-validation summary (JSON of bench/small_data.py --cv): the card's "
                   "headline quality figures, out-of-fold"),
    run_params: Path = typer.Option(None, "--params", help="the run's params file: its extract "
                                                          "section joins the card's settings"),
    command: str = typer.Option("", help="the command that regenerates it, for the card"),
    summary: str = typer.Option("", help="one line for the registry"),
    directory: Path = typer.Option(None, help="registry folder (default models/pretrained)"),
) -> None:
    """Register a trained generator under a name, with its model card and sha256."""
    from gan.checkpoint import CheckpointError, read_generator
    from gan.deploy.pretrained import (PRETRAINED_DIR, describe_data, model_card, publish,
                                         trained_pairs)
    from stages.common import fail

    try:
        checkpoint = read_generator(model)
        train = _read_json(train_metrics)
        evaluation = _read_json(eval_metrics)
        raw = evaluation.get("raw")
        if not raw:
            raise ValueError(f"{eval_metrics}: no 'raw' scores (the evaluate stage's metrics?)")
        record = _read_json(source) if source is not None else None
        if record is None and not data:
            raise ValueError("say what the model was trained on: --source (the run's "
                             "source.json) or --data")
        text = " ".join(filter(None, [describe_data(record, all_pairs) if record else "", data]))
        cv = _read_json(cv_metrics) if cv_metrics is not None else None
        if cv is not None and not isinstance(cv.get("ours"), dict):
            raise ValueError(f"{cv_metrics}: no 'ours' figures (a cross-validation summary of "
                             "bench/small_data.py --cv?)")
        trained = trained_pairs(record, all_pairs) if record else None
        settings = ({"extract": asdict(load_params(run_params).extract)}
                    if run_params is not None else None)
        card = model_card(name, checkpoint, train, raw, text, command, cv=cv,
                          all_pairs=all_pairs, trained_pairs=trained, run_params=settings,
                          full_size={k: evaluation[k] for k in ("niqe", "loe")
                                     if isinstance(evaluation.get(k), dict)})
        target = publish(model, name, card, summary or text.splitlines()[0],
                         directory or PRETRAINED_DIR)
    except (CheckpointError, ValueError, OSError) as exc:
        fail(str(exc))
    ours = raw["ours"]
    scored = "seen pairs, not a test" if all_pairs else "raw test pairs"
    line = (f"{target}: registered as {name!r} ({ours['psnr']:.2f} dB / {ours['ms_ssim']:.4f} "
            f"on {ours.get('patches', '?')} {scored})")
    if cv is not None:
        oof = cv["ours"]
        line += (f"; cross-validated {_figure(oof.get('psnr'), '.2f')} dB / "
                 f"{_figure(oof.get('ms_ssim'), '.4f')} out-of-fold")
    typer.echo(line)


def _figure(value: object, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "n/a"


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
