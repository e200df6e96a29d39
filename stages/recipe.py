"""Named settings: a recipe is a params.yaml overlay (recipes/<name>.yaml) of the keys it changes.

A command of the stage layer (it reads files and prints -S flags), not a pipeline stage.

    python -m stages.recipe recipes/small-data.yaml            # -> -S train.steps=600 -S ...
    dvc exp run $(python -m stages.recipe recipes/small-data.yaml) -S data.archive=...

One file holds the recipe, and every user of it (``make small-data``'s ``dvc exp run``,
tools/pretrained.sh, bench/small_data.py) reads it from there. A key params.yaml does not have
is refused, so a typo cannot silently train the defaults, and so is a value params.yaml may not
hold: the overlaid params are built as gan.config.Params, which checks every key.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from gan.config import ConfigError, Params


class RecipeError(ValueError):
    """The recipe file is unreadable, names a key params.yaml does not have or sets a value
    that params.yaml may not hold."""


def load_recipe(path: Path, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The overlay in ``path``, checked over ``params`` (see check_overlay)."""
    try:
        recipe = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RecipeError(f"{path}: cannot read the recipe: {exc}") from None
    return check_overlay(recipe, params, str(path))


def check_overlay(overlay: Any, params: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """``overlay`` itself when ``params`` with it applied is valid params (gan.config.Params:
    known sections and keys, accepted values); RecipeError naming the first problem (``where``:
    the overlay's origin)."""
    if not isinstance(overlay, dict) or not all(isinstance(v, dict) for v in overlay.values()):
        raise RecipeError(f"{where}: a recipe is a mapping of params.yaml sections to their keys")
    merged = copy.deepcopy(params)
    for name, values in overlay.items():
        merged[name] = {**(merged.get(name) or {}), **values}
    try:
        Params.from_dict(merged)
    except ConfigError as exc:
        raise RecipeError(f"{where}: {exc}") from None
    return overlay


def apply_recipe(params: dict[str, Any], recipe: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A copy of ``params`` with the recipe's values in place."""
    merged = copy.deepcopy(params)
    for name, values in recipe.items():
        merged[name].update(values)
    return merged


def set_params_args(recipe: dict[str, dict[str, Any]]) -> list[str]:
    """The recipe as ``dvc exp run`` arguments: -S section.key=value (values as YAML/JSON)."""
    args = []
    for name, values in recipe.items():
        for key, value in values.items():
            args += ["-S", f"{name}.{key}={json.dumps(value, separators=(',', ':'))}"]
    return args


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: python -m stages.recipe RECIPE.yaml [PARAMS.yaml]", file=sys.stderr)
        return 2
    params_path = Path(argv[1] if len(argv) == 2 else "params.yaml")
    try:
        params = yaml.safe_load(params_path.read_text())
        print(" ".join(set_params_args(load_recipe(Path(argv[0]), params))))
    except (OSError, RecipeError) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
