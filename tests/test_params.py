"""params.yaml is validated before any stage works: every bad value is one line naming the file,
the key, the value and what is accepted (gan/config.py declares, stages/params.py loads), never a
traceback."""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from stages.recipe import apply_recipe, load_recipe
from stages.app import app
from gan.config import MSSSIM_SCALES, Params
from stages.params import ParamsError, load_params, params_from_dict
from tests.conftest import ROOT

PARAMS_TEXT = (ROOT / "params.yaml").read_text()
PARAMS = yaml.safe_load(PARAMS_TEXT)

# At least one bad value for every key of every section (test_every_key_has_a_bad_value holds
# the table to the configs). The tester's cases of issue 12 are among them.
BAD: list[tuple[str, Any]] = [
    ("data.source", "flickr"),
    ("data.phone", "pixel"),
    ("data.urls", "https://data.vision.ee.ethz.ch/dped.zip"),  # one string: 35 one-letter mirrors
    ("data.urls", ["ftp://mirror.example/dped.zip"]),
    ("data.urls", {"a": 1}),
    ("data.sha256", 12345),
    ("data.sha256", "abc123"),
    ("data.archive", 5),
    ("data.retries", -1),
    ("data.seed", -1),
    ("data.sample_train_pairs", 0),
    ("data.sample_test_pairs", "many"),
    ("data.pirm_urls", "https://github.com/aiff22/ai-challenge/archive/master.zip"),
    ("data.pirm_urls", ["github.com/aiff22"]),
    ("data.pirm_train", "0-x"),
    ("data.pirm_train", 5.5),
    ("data.pirm_test", "9-3"),
    ("extract.patch", 0),
    ("extract.crop", "abc"),
    ("extract.crop", 120),
    ("extract.max_shift", 3),
    ("extract.max_shift", -1),
    ("extract.min_ncc", "high"),
    ("extract.min_ncc", 1.5),
    ("extract.subpixel", "maybe"),
    ("extract.workers", -3),
    ("model.generator", "unet"),
    ("model.depth", -1),
    ("model.base_width", 0),
    ("model.growth_rate", 2.5),
    ("model.layers_per_block", 0),
    ("model.global_residual", 1),
    ("model.resnet_width", 0),
    ("model.resnet_blocks", -1),
    ("model.d_width", "wide"),
    ("model.d_layers", 0),
    ("model.d_input", "colour"),
    ("loss.perceptual", -1.0),
    ("loss.adversarial", "lots"),
    ("loss.msssim", float("nan")),
    ("loss.pixel", float("inf")),
    ("loss.color", -0.5),
    ("loss.tone", "strong"),
    ("loss.texture", float("nan")),
    ("loss.vgg_weights", "/no/such/vgg19.pth"),
    ("loss.vgg_weights", 19),
    ("loss.distance", "foo"),
    ("loss.msssim_win", 4),
    ("loss.msssim_win", 7),  # odd, but 5 scales of a 7x7 window need 97 px: the crop is 96
    ("loss.msssim_win", 1),
    ("train.steps", 0),
    ("train.steps", 2.5),  # silently ran 3 steps before
    ("train.batch_size", 0),
    ("train.lr_g", "fast"),
    ("train.lr_g", 0),
    ("train.lr_d", -0.1),
    ("train.beta1", 1.0),
    ("train.beta2", True),
    ("train.seed", None),
    ("train.device", "tpu"),
    ("train.device", "cuda:0"),  # gan.runtime.resolve_device takes auto, cpu or cuda only
    ("train.log_every", 0),
    ("train.val_every", "often"),
    ("train.val_patches", 0),
    ("train.checkpoint_every", -5),
    ("train.compile", "no way"),
    ("train.gpus", 0),
    ("train.precision", "fp16"),
    ("train.ema", 1.0),
    ("train.lr_cosine_steps", -1),
    ("train.input_noise", -0.1),
    ("model.guided_radius", -1),
    ("model.guided_radius", 1.5),
    ("model.guided_eps", 0),
    ("evaluate.extra_models", "models/other.pt"),
    ("evaluate.device", "gpu"),
    ("evaluate.batch_size", 0),
    ("evaluate.saved_patches", 0),
    ("evaluate.saved_photos", 0),
    ("evaluate.clhe_white_balance", 2),
    ("report.patches", -1),
    ("report.patches", 9),  # evaluate.saved_patches is 8
    ("report.crop", 0),
    ("report.dpi", "abc"),
]


def changed(changes: dict[str, Any]) -> dict[str, Any]:
    """params.yaml's values with 'section.key' changes."""
    params = copy.deepcopy(PARAMS)
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        params[section][key] = value
    return params


def as_written(value: Any) -> str:
    """How a message shows a value: YAML's words for null and booleans, repr otherwise."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def validate(params: dict[str, Any], path: str = "params.yaml") -> dict[str, Any]:
    """The params as the loader builds them, back as a dict of sections (the present ones)."""
    loaded = params_from_dict(params, path)
    return {name: asdict(vars(loaded)[name]) for name in Params.SECTIONS
            if vars(loaded)[name] is not None}


def schema() -> dict[str, list[str]]:
    return {name: [f.name for f in fields(cls)] for name, cls in Params.SECTIONS.items()}


def refusal(params: dict[str, Any], path: str = "params.yaml") -> str:
    with pytest.raises(ParamsError) as caught:
        validate(params, path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"{path}: "), message
    return message


def test_the_committed_params_validate_unchanged():
    checked = validate(copy.deepcopy(PARAMS), "params.yaml")
    assert checked == PARAMS
    assert all(type(checked[s][k]) is type(PARAMS[s][k]) for s in PARAMS for k in PARAMS[s])
    assert schema() == {s: list(v) for s, v in PARAMS.items()}  # the file's order


def test_every_key_has_a_bad_value():
    covered = {key for key, _ in BAD}
    assert covered == {f"{s}.{k}" for s, keys in schema().items() for k in keys}


@pytest.mark.parametrize("key, value", BAD, ids=[f"{k}={v!r}"[:60] for k, v in BAD])
def test_a_bad_value_is_one_line_naming_the_key_and_the_value(key, value):
    message = refusal(changed({key: value}))
    assert key in message
    assert as_written(value)[:60] in message


@pytest.mark.parametrize("changes, says", [
    ({"loss.perceptual": 0, "loss.adversarial": 0.0, "loss.msssim": 0, "loss.pixel": 0.0,
      "loss.color": 0, "loss.tone": 0, "loss.texture": 0},
     "loss.texture are all 0: at least one loss weight must be > 0"),
    ({"data.source": "dped", "data.urls": []}, "data.urls must be a non-empty list"),
    ({"data.source": "pirm", "data.pirm_urls": []}, "data.pirm_urls must be a non-empty list"),
    ({"data.source": "pirm", "data.phone": "sony"},
     "data.phone is 'sony', but data.source: pirm has iphone pairs only"),
    ({"data.pirm_test": "100-200"}, "data.pirm_train (0-159) and data.pirm_test (100-200) share"),
    ({"data.pirm_test": ""}, "data.pirm_test: the split is empty"),
    ({"extract.crop": 64}, "loss.msssim_win must be an odd integer in 3..3"),  # (5-1)*16+1 > 64
    ({"extract.patch": 96}, "extract.max_shift 2 must lie in 0..0"),
    ({"evaluate.saved_patches": 4}, "report.patches must be an integer in 1..4"),
    ({"model.d_layers": 8}, "model.d_layers must be an integer in 1..7 (each layer halves the "
                            "96 px extract.crop; after 7 its maps are one pixel), got 8"),
])
def test_keys_that_limit_each_other(changes, says):
    assert says in refusal(changed(changes))


# Sizes that would ask for more memory or processes than any machine has (the hostile probe's
# cases: a 257 GiB batch, matplotlib's bad_alloc, 100,000 worker processes, a 60-layer D that
# went to NaN) are refused before any work, naming the key and its bound.
@pytest.mark.parametrize("key, value, says", [
    ("train.batch_size", 10_000_000, "train.batch_size must be an integer in 1..4096 (per "
                                     "process), got 10000000"),
    ("report.dpi", 100_000, "report.dpi must be an integer in 1..1200, got 100000"),
    ("extract.workers", 100_000, "extract.workers must be an integer in 0..256 (0: all cores)"),
    ("model.d_layers", 60, "model.d_layers must be an integer in 1..12 (each halves the image)"),
    ("evaluate.batch_size", 1 << 40, "evaluate.batch_size must be an integer in 1..4096"),
    ("data.sample_train_pairs", 10**9, "data.sample_train_pairs must be an integer in "
                                       "1..1000000"),
    ("model.base_width", 100_000, "model.base_width must be an integer in 1..1024"),
])
def test_a_size_beyond_any_machine_is_refused_naming_the_key(key, value, says):
    assert says in refusal(changed({key: value}))


def test_what_a_key_accepts_beside_it_is_fine():
    validate(changed({"data.source": "dped", "data.urls": [], "data.archive": "/some/copy.zip"}))
    validate(changed({"data.source": "pirm", "data.pirm_train": 7, "data.pirm_test": "0-6,8"}))
    validate(changed({"loss.perceptual": 0, "loss.msssim": 0}))  # the adversarial term alone
    validate(changed({"extract.crop": 33, "extract.patch": 33, "extract.max_shift": 0,
                      "loss.msssim_win": 3}))
    validate(changed({"data.sha256": "AB" * 32, "evaluate.extra_models": None}))


def test_a_hand_written_exponent_is_a_float_and_an_integral_float_an_int(tmp_path):
    text = PARAMS_TEXT.replace("lr_g: 0.0002", "lr_g: 1e-4").replace("steps: 100 ", "steps: 100.0 ")
    assert yaml.safe_load(text)["train"]["lr_g"] == "1e-4"  # YAML 1.1: a float needs a dot
    path = tmp_path / "params.yaml"
    path.write_text(text)
    params = load_params(path)
    assert params.train.lr_g == 0.0001 and type(params.train.lr_g) is float
    assert params.train.steps == 100 and type(params.train.steps) is int
    assert type(params.train.lr_d) is float and type(params.loss.perceptual) is float


def test_an_unknown_key_or_section_is_refused_with_the_closest_name():
    params = changed({})
    params["train"]["stepz"] = 100
    assert refusal(params) == ("params.yaml: train.stepz is not a key of the train section; "
                               "did you mean train.steps?")
    params = changed({})
    params["train"]["zzz"] = 1
    assert "its keys are: steps, batch_size, lr_g" in refusal(params)
    params = changed({})
    params["trian"] = params.pop("train")
    assert "trian is not a params.yaml section; did you mean train?" in refusal(params)
    params = changed({})
    params["report"] = None
    assert "section report must be a mapping of its keys (patches, crop, dpi), got null" in \
        refusal(params)


def test_a_file_may_lack_sections_but_a_present_section_lacks_no_key():
    loaded = params_from_dict({"extract": PARAMS["extract"]}, "x")  # a stage's own sections
    assert loaded.extract.crop == 96
    with pytest.raises(ParamsError, match=r"^x: section 'report' is missing or not a mapping$"):
        loaded.report
    partial = changed({})
    del partial["train"]["ema"]
    with pytest.raises(ParamsError, match=r"^x: train.ema is missing \(a number in \[0, 1\)"):
        validate(partial, "x")


def test_the_small_data_recipe_over_params_validates():
    recipe = load_recipe(ROOT / "recipes" / "small-data.yaml", PARAMS)
    merged = apply_recipe(PARAMS, recipe)
    assert validate(merged, "params.yaml") == merged


def test_yaml_and_file_errors_are_one_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("train:\n  steps: [1\n  lr_g: 2\n")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00train")
    for path, says in ((broken, "not valid YAML"), (binary, "not UTF-8"),
                       (tmp_path / "absent.yaml", "cannot read the params file")):
        with pytest.raises(ParamsError) as caught:
            load_params(path)
        assert says in str(caught.value) and len(str(caught.value).splitlines()) == 1


def test_the_msssim_limit_is_what_the_loss_needs():
    """The loss.msssim_win / extract.crop limit (gan.config.Params) against the loss itself."""
    from gan.losses import MSSSIMLoss
    from gan.metrics import MS_SSIM_WEIGHTS

    assert MSSSIM_SCALES == len(MS_SSIM_WEIGHTS)  # the count lives in gan.config, torch-free
    for crop in (33, 64, 96, 129):
        for win in (3, 5, 7, 9):
            params = changed({"extract.patch": max(crop, 100), "extract.crop": crop,
                              "extract.max_shift": 0, "loss.msssim_win": win})
            try:
                validate(params)
                accepted = True
            except ParamsError:
                accepted = False
            assert accepted == (MSSSIMLoss(win).min_size <= crop), (crop, win)
    assert math.isclose(validate(changed({"train.lr_d": "2E-4"}))["train"]["lr_d"], 2e-4)


# -- the real commands: every stage stops on a bad value of any section, before any work -------

STAGE_RUNS = {  # stage -> (a bad value of another section, arguments naming paths under tmp)
    "download": (("report.dpi", "abc"), ["--out", "{tmp}/raw", "--record", "{tmp}/source.json",
                                         "--downloads", "{tmp}/downloads"]),
    "extract": (("train.device", "tpu"), ["--raw", "{tmp}/none.zip", "--out", "{tmp}/patches",
                                          "--metrics", "{tmp}/extract.json"]),
    "train": (("data.sha256", 12345), ["--data", "{tmp}/patches", "--model", "{tmp}/g.pt",
                                       "--checkpoint", "{tmp}/last.pt", "--metrics",
                                       "{tmp}/train.json", "--curves", "{tmp}/curves"]),
    "evaluate": (("loss.distance", "foo"), ["--patches", "{tmp}/patches", "--raw",
                                            "{tmp}/none.zip", "--model", "{tmp}/g.pt",
                                            "--metrics", "{tmp}/eval.json", "--per-patch",
                                            "{tmp}/pp.csv", "--out", "{tmp}/eval"]),
    "report": (("extract.min_ncc", "high"), ["--eval-dir", "{tmp}/eval", "--metrics",
                                             "{tmp}/eval.json", "--figures", "{tmp}/figures",
                                             "--html-out", "{tmp}/report.html"]),
}


@pytest.mark.parametrize("stage", list(STAGE_RUNS))
def test_each_stage_stops_on_any_bad_value_with_one_line(stage, tmp_path):
    (key, value), args = STAGE_RUNS[stage]
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(changed({key: value}), sort_keys=False))
    result = CliRunner().invoke(app, [stage, "--params", str(params),
                                      *[a.format(tmp=tmp_path) for a in args]])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert str(params) in lines[0] and key in lines[0] and as_written(value) in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written


def test_a_stage_names_broken_yaml_in_one_line(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS_TEXT.replace("  steps: 100", "  steps: [100"))
    result = CliRunner().invoke(app, ["report", "--params", str(params),
                                      "--metrics", str(tmp_path / "absent.json")])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "not valid YAML" in lines[0] and "line " in lines[0], result.output


def test_an_unknown_key_stops_a_stage_with_the_suggestion(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS_TEXT.replace("  steps: 100", "  stepz: 100"))
    result = CliRunner().invoke(app, ["download", "--params", str(params), "--out",
                                      str(tmp_path / "raw"), "--record", str(tmp_path / "s.json")])
    assert result.exit_code != 0
    assert result.output.strip() == (f"error: {params}: train.stepz is not a key of the train "
                                     "section; did you mean train.steps?")
    assert not Path(tmp_path / "raw").exists()


def test_a_yaml_alias_bomb_is_refused_as_too_large_in_one_short_line(tmp_path):
    # Ten lines whose aliases expand to 9 ** 10 URLs: counting stops at the limit, and no
    # message ever prints the value whole (it used to end in a MemoryError inside the check).
    levels = ['&a ["https://x.example/1", "https://x.example/2", "https://x.example/3", '
              '"https://x.example/4", "https://x.example/5", "https://x.example/6", '
              '"https://x.example/7", "https://x.example/8", "https://x.example/9"]']
    for prev, name in zip("abcdefghi", "bcdefghij"):
        levels.append(f"&{name} [{', '.join([f'*{prev}'] * 9)}]")
    params = copy.deepcopy(PARAMS)
    params["data"]["urls"] = "BOMB"
    text = yaml.safe_dump(params, sort_keys=False).replace("urls: BOMB",
                                                           f"urls: [{', '.join(levels)}]")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    bomb = yaml.safe_load(text)["data"]["urls"]
    assert len(bomb) == 10 and len(bomb[-1]) == 9  # the bomb is there, unexpanded
    with pytest.raises(ParamsError) as refused:
        load_params(path)
    assert str(refused.value) == (f"{path}: data.urls holds more than 10,000 values: too large "
                                  "to be a setting")
    from gan.config import shown
    assert len(shown(bomb)) <= 80
