"""The DVC workflow with the real dvc CLI, in temporary git repositories on a tiny setting.

What a user of the pipeline relies on: one `dvc repro` runs every stage and leaves the data, the
model, the metrics (`dvc metrics show`), the curves and figures (`dvc plots show`) and the report;
a second `dvc repro` does nothing; a param reruns exactly the stages that read it; `dvc exp run
-S` / `exp show` / `metrics diff` / `plots diff`; `dvc push` and `dvc pull` round-trip data and
model; a queued sweep over a loss weight. This is the one suite that runs the dvc CLI; its tests
are marked slow. And, by reading the code (no dvc run, not slow), that dvc.yaml lists as deps
exactly the code each stage imports and as params exactly the keys it reads.

One tiny project is reproduced once per module (about 25 s) and copied, `.git` and `.dvc` with it,
for every test that changes it. The dvc runs are single-threaded (OMP_NUM_THREADS=1): on these
tiny tensors torch's thread pool costs more than it saves, up to 4x the wall time on a busy 2-core
machine, and the results are the same.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, copy_project_files, dvc, run

STAGES = ("download", "extract", "train", "evaluate", "report")
METHODS = ("input", "clhe", "npea", "ours")
# The tiny setting: a whole `dvc repro` in ~25 s, every stage on its real code path.
TINY: dict[str, dict[str, Any]] = {
    "data": {"sample_train_pairs": 40, "sample_test_pairs": 12},
    "model": {"depth": 1, "base_width": 8, "growth_rate": 4, "layers_per_block": 2, "d_width": 8,
              "d_layers": 2},
    "loss": {"perceptual": 0.0},
    "train": {"steps": 2, "batch_size": 2, "log_every": 1, "val_every": 2, "val_patches": 4,
              "checkpoint_every": 1, "device": "cpu"},
    "evaluate": {"saved_patches": 3, "saved_photos": 1, "device": "cpu"},
    "report": {"patches": 3, "crop": 64},
}


# -- helpers --------------------------------------------------------------------------------------

def set_params(repo: Path, changes: dict[str, Any]) -> None:
    """Set 'section.key' values in the project's params.yaml."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def ran(out: str) -> list[str]:
    """The stages a `dvc repro` / `dvc exp run` output says it ran, in order."""
    return re.findall(r"Running stage '(\w+)'", out)


def copy_project(source: Path, tmp_path: Path) -> Path:
    """A copy of a reproduced project: workspace, .git, .dvc (with its cache)."""
    repo = tmp_path / "repo"
    shutil.copytree(source, repo, symlinks=True)
    return repo


def commit(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", message], repo)


def exp_table(repo: Path) -> dict[str, dict]:
    """`dvc exp show --json` as {baseline or experiment name: {params, metrics, state}}: the
    baseline commit under 'baseline', each file's content under its path, an experiment's state
    (queued, running, success, failed) from its executor."""
    rows: dict[str, dict] = {}

    def record(name: str, entry: dict, state: str | None = None) -> None:
        data = entry.get("data") or {}
        rows[name] = {
            "params": {p: v.get("data") for p, v in (data.get("params") or {}).items()},
            "metrics": {p: v.get("data") for p, v in (data.get("metrics") or {}).items()},
            "state": state,
        }

    for baseline in json.loads(run(dvc("exp", "show", "--json"), repo)):
        if baseline["rev"] == "workspace":
            record("workspace", baseline)
            continue
        record("baseline", baseline)
        for exp in baseline.get("experiments") or []:
            record(exp["name"], exp["revs"][0], (exp.get("executor") or {}).get("state"))
    return rows


def numbers(tree: Any, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a JSON tree, by dotted path (what DVC counts as metrics)."""
    if isinstance(tree, dict):
        return {name: value for key, sub in tree.items()
                for name, value in numbers(sub, f"{prefix}{key}.").items()}
    is_number = isinstance(tree, (int, float)) and not isinstance(tree, bool)
    return {prefix.rstrip("."): tree} if is_number else {}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the shared, reproduced tiny project ----------------------------------------------------------

@pytest.fixture(scope="module")
def single_thread():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        yield


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, single_thread) -> Path:
    """The project on the tiny setting, `dvc repro`'d and committed (dvc.lock, metrics, plots)."""
    repo = tmp_path_factory.mktemp("reproduced") / "repo"
    copy_project_files(repo)
    set_params(repo, {f"{s}.{k}": v for s, values in TINY.items() for k, v in values.items()})
    run(["git", "init", "-q"], repo)
    commit(repo, "project")
    out = run(dvc("repro"), repo)
    assert ran(out) == list(STAGES), out
    commit(repo, "baseline")
    return repo


@pytest.fixture(scope="module")
def loss_changed(tmp_path_factory, reproduced) -> tuple[Path, str]:
    """A copy of the reproduced project with loss.adversarial 0.001 -> 0.01 and `dvc repro` run
    (not committed); and that repro's output."""
    repo = copy_project(reproduced, tmp_path_factory.mktemp("loss"))
    set_params(repo, {"loss.adversarial": 0.01})
    return repo, run(dvc("repro"), repo)


# -- 0. one repro builds everything --------------------------------------------------------------

@pytest.mark.slow
def test_a_full_repro_leaves_data_model_metrics_plots_and_report(reproduced, tmp_path):
    # (the `reproduced` fixture has checked that `dvc repro` ran every stage, in order)
    repo = copy_project(reproduced, tmp_path)  # `dvc plots show -o` writes into the workspace
    assert set(yaml.safe_load((repo / "dvc.lock").read_text())["stages"]) == set(STAGES)
    record = json.loads((repo / "data" / "source.json").read_text())
    assert record["pairs"] == {"train": 40, "test": 12}  # the sample size the params ask for
    for name in ("data/patches/train_phone.npy", "models/generator.pt", "reports/report.html",
                 "reports/figures/patches.png", "reports/figures/training.png"):
        assert (repo / name).stat().st_size > 0, name

    # `dvc metrics show` reads the three metrics files dvc.yaml declares: every number in them
    shown = json.loads(run(dvc("metrics", "show", "--json"), repo))
    (files,) = [rev["data"] for rev in shown.values()]
    assert set(files) == {"metrics/extract.json", "metrics/train.json", "metrics/eval.json"}
    for path, entry in files.items():
        assert numbers(entry["data"]) == numbers(json.loads((repo / path).read_text())), path
    scores = files["metrics/eval.json"]["data"]
    for geometry in ("aligned", "raw"):
        assert set(METHODS) <= set(scores[geometry])
    assert set(METHODS[1:]) <= set(scores["loe"])
    assert set(METHODS) <= set(scores["niqe"])  # the input's NIQE beside each method's
    assert files["metrics/extract.json"]["data"]["kept"] > 0

    # `dvc plots show` renders the training curves and the report's figures
    run(dvc("plots", "show", "-o", "plots_html"), repo)
    index = (repo / "plots_html" / "index.html").read_text()
    assert "patches.png" in index and "validation" in index.lower()


# -- 1. nothing to do, nothing done ---------------------------------------------------------------

@pytest.mark.slow
def test_a_second_repro_does_nothing(reproduced, tmp_path):
    repo = copy_project(reproduced, tmp_path)
    out = run(dvc("repro"), repo)
    assert ran(out) == []
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in out
    assert "Data and pipelines are up to date." in run(dvc("status"), repo)
    # and the outputs in git (metrics, curves, figures: cache: false) were not rewritten
    assert run(["git", "status", "--porcelain"], repo) == ""


# -- 2. a param reruns exactly the stages that read it --------------------------------------------

@pytest.mark.slow
def test_a_loss_param_reruns_train_evaluate_and_report_only(loss_changed):
    repo, out = loss_changed
    assert ran(out) == ["train", "evaluate", "report"]
    for stage in ("download", "extract"):
        assert f"Stage '{stage}' didn't change, skipping" in out
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert lock["stages"]["train"]["params"]["params.yaml"]["loss"]["adversarial"] == 0.01
    assert "Data and pipelines are up to date." in run(dvc("status"), repo)


@pytest.mark.slow
def test_an_extract_param_reruns_from_extract(reproduced, tmp_path):
    repo = copy_project(reproduced, tmp_path)
    # max_shift 1 < the sample's shifts of up to 2 px: other crops, so the patches change
    set_params(repo, {"extract.max_shift": 1})
    before = digest(repo / "data" / "patches" / "train_phone.npy")
    out = run(dvc("repro"), repo)
    assert ran(out) == ["extract", "train", "evaluate", "report"]
    assert "Stage 'download' didn't change, skipping" in out
    assert digest(repo / "data" / "patches" / "train_phone.npy") != before


# -- 3. experiments -------------------------------------------------------------------------------

@pytest.mark.slow
def test_exp_run_makes_an_experiment_that_exp_show_lists(reproduced, tmp_path):
    repo = copy_project(reproduced, tmp_path)
    out = run(dvc("exp", "run", "-n", "adv-001", "-S", "loss.adversarial=0.01"), repo)
    assert ran(out) == ["train", "evaluate", "report"]

    table = exp_table(repo)
    base, exp = table["baseline"], table["adv-001"]
    assert base["params"]["params.yaml"]["loss"]["adversarial"] == 0.001
    assert exp["params"]["params.yaml"]["loss"]["adversarial"] == 0.01
    # L_G = ... + adversarial * L_GAN: ten times the weight, another total loss
    assert (exp["metrics"]["metrics/train.json"]["loss"]["total"]
            != base["metrics"]["metrics/train.json"]["loss"]["total"])
    for table_of in (base, exp):  # both evaluated: every method, both geometries
        scores = table_of["metrics"]["metrics/eval.json"]
        for geometry in ("aligned", "raw"):
            assert set(METHODS) <= set(scores[geometry])
    # the data stages did not run: the experiment shares the baseline's patches
    assert (exp["metrics"]["metrics/extract.json"] == base["metrics"]["metrics/extract.json"])

    # the table a person reads lists the param and the scores, per experiment
    lines = run(dvc("exp", "show", "--md", "--no-pager"), repo).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    row = next(line for line in lines if "[adv-001]" in line)
    cells = dict(zip(header, (c.strip() for c in row.strip().strip("|").split("|"))))
    # the metric loss.adversarial (train.json) shares the name: DVC prefixes both with their file
    param = next(c for c in header
                 if c in ("loss.adversarial", "params.yaml:loss.adversarial"))
    assert cells[param] == "0.01"
    psnr = exp["metrics"]["metrics/eval.json"]["aligned"]["ours"]["psnr"]
    assert float(cells["aligned.ours.psnr"]) == pytest.approx(psnr)
    assert "aligned.ours.ms_ssim" in header and "raw.npea.psnr" in header


# -- 4. comparing commits -------------------------------------------------------------------------

@pytest.mark.slow
def test_metrics_diff_and_plots_diff_against_the_previous_commit(loss_changed, tmp_path):
    repo = copy_project(loss_changed[0], tmp_path)
    commit(repo, "loss.adversarial 0.01")
    old = json.loads(run(["git", "show", "HEAD~1:metrics/eval.json"], repo))
    new = json.loads((repo / "metrics" / "eval.json").read_text())

    diff = json.loads(run(dvc("metrics", "diff", "HEAD~1", "--all", "--json"), repo))
    evaluated = diff["metrics/eval.json"]
    for geometry in ("aligned", "raw"):
        for method in METHODS:
            for metric in ("psnr", "ms_ssim"):
                row = evaluated[f"{geometry}.{method}.{metric}"]
                assert row["old"] == old[geometry][method][metric]
                assert row["new"] == new[geometry][method][metric]
                assert row["diff"] == pytest.approx(row["new"] - row["old"])
    assert diff["metrics/train.json"]["loss.total"]["diff"] != 0
    text = run(dvc("metrics", "diff", "HEAD~1", "--all"), repo)
    assert re.search(r"metrics/eval\.json\s+aligned\.ours\.psnr\s", text)
    assert re.search(r"metrics/eval\.json\s+raw\.clhe\.ms_ssim\s", text)

    run(dvc("plots", "diff", "HEAD~1", "-o", "plots_diff"), repo)
    page = (repo / "plots_diff" / "index.html").read_text()
    for title in ("Generator losses", "Discriminator", "Validation PSNR", "Validation MS-SSIM"):
        assert f'"{title}"' in page  # the curves of dvc.yaml's top-level plots
    assert '"rev": "HEAD~1"' in page and '"rev": "workspace"' in page
    static = repo / "plots_diff" / "static"
    for figure in ("patches", "full_size", "scores", "training"):
        for rev in ("HEAD~1", "workspace"):
            image = static / f"{rev}_reports_figures_{figure}.png"
            assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f'src="static/{image.name}"' in page
    # the training curves really differ between the two commits
    assert ((static / "HEAD~1_reports_figures_training.png").read_bytes()
            != (static / "workspace_reports_figures_training.png").read_bytes())


# -- 5. remote storage ----------------------------------------------------------------------------

@pytest.mark.slow
def test_push_and_pull_round_trip_data_and_model(reproduced, tmp_path):
    repo = copy_project(reproduced, tmp_path)
    remote = tmp_path / "remote"
    remote.mkdir()
    run(dvc("remote", "add", "-d", "local", str(remote)), repo)
    outputs = ["models/generator.pt", "models/checkpoints/last.pt", "data/raw/dped.zip",
               "data/patches/train_phone.npy", "data/patches/test_dslr.npy",
               "data/patches/pairs.csv", "reports/report.html"]
    before = {name: digest(repo / name) for name in outputs}
    run(dvc("push"), repo)
    assert "in sync" in run(dvc("status", "--cloud"), repo)

    for name in (".dvc/cache", "data/raw", "data/patches", "data/eval", "models/generator.pt",
                 "models/checkpoints", "reports/report.html"):
        path = repo / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert "Data and pipelines are up to date." not in run(dvc("status"), repo)

    run(dvc("pull"), repo)
    assert {name: digest(repo / name) for name in outputs} == before
    assert "Data and pipelines are up to date." in run(dvc("status"), repo)
    assert run(["git", "status", "--porcelain"], repo).split() == ["M", ".dvc/config"]


# -- dvc.yaml against the code (static: no dvc run) -----------------------------------------------

def _module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").exists() else None


def _imports(path: Path) -> set[str]:
    """Project modules imported anywhere in the file (the stages import inside their command)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {n for n in names if n.split(".")[0] in ("gan", "stages") and _module_file(n)}


def _only_a_docstring(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return all(isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) for s in body)


def code_of(stage: str) -> set[str]:
    """The files of stages/<stage>.py and every project module it imports, transitively; package
    __init__ files that hold nothing but a docstring are left out (they cannot change a result).
    Not counted: the CLI dispatch `python -m stages` runs first (stages/__main__.py, app.py,
    which imports every command module): see the dvc.yaml header."""
    seen: set[str] = set()
    todo = [f"stages.{stage}"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        todo += sorted(_imports(_module_file(name)))
    files = {_module_file(n) for n in seen}
    return {f.relative_to(ROOT).as_posix() for f in files
            if not (f.name == "__init__.py" and _only_a_docstring(f))}


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_depends_on_exactly_the_code_it_imports(stage):
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    listed = {d for d in spec["deps"] if d.endswith(".py")}
    code = code_of(stage)
    assert sorted(code - listed) == [], "imported but not a dep: an edit would not rerun it"
    assert sorted(listed - code) == [], "a dep it does not import: an edit reruns it for nothing"


def _recording(config, log: set[str]):
    """A copy of a section config (gan.config) that records each field a stage reads as
    'section.key': an instance of a subclass, so isinstance, methods and dataclasses.asdict
    (which reads every field: a stage recording a whole section reads all of it) behave."""
    names = {f.name for f in dataclasses.fields(config)}
    section = config.SECTION

    class Recording(type(config)):
        def __getattribute__(self, name):
            if name in names:
                log.add(f"{section}.{name}")
            return super().__getattribute__(name)

    copy = object.__new__(Recording)
    copy.__dict__.update(vars(config))  # no __init__: the checks would read every field
    return copy


def _reads(params, log: set[str]):
    """The loaded params (stages.params.LoadedParams) with each present section recording."""
    copy = object.__new__(type(params))
    copy.__dict__.update({name: value if value is None else _recording(value, log)
                          for name, value in vars(params).items() if name != "path"},
                         path=vars(params)["path"])
    return copy


# The download stage reads the data keys of its data.source only, so its reads are the union of
# one run per source (each stopped after reading: a missing archive, a mirror that refuses the
# connection, a sample builder that fails on its first call).
UNREACHABLE = ["http://127.0.0.1:9/dped.zip"]  # the discard port: connection refused at once
DOWNLOAD_RUNS = [{"source": "dped", "archive": "{missing}"},
                 {"source": "dped", "archive": None, "urls": UNREACHABLE, "retries": 0},
                 {"source": "pirm", "archive": "{missing}"},
                 {"source": "pirm", "archive": None, "pirm_urls": UNREACHABLE, "retries": 0},
                 {"source": "sample"}]


def _stop_the_sample(*args, **kwargs):
    raise FileNotFoundError("stopped after the params were read")


def params_read_by(stage: str, tmp_path: Path, monkeypatch) -> set[str]:
    """The params keys the stage's command reads, recorded by running it until just after it has
    read them (each run is made to stop there by a missing input: not by an invalid value,
    which load_params refuses before the stage reads anything). load_params checks the whole
    file; the recording copy of its sections sees only what the stage then reads. The extract
    stage hands its section to the extraction whole, so it runs on a tiny sample archive, in
    one process (a recording copy does not pickle)."""
    from typer.testing import CliRunner

    import gan.data.sample
    import gan.data.sources
    import stages.params
    from stages.app import app

    module = __import__(f"stages.{stage}", fromlist=["main"])
    missing = str(tmp_path / "missing")
    args = {
        "download": ["--out", str(tmp_path / "raw"), "--record", str(tmp_path / "source.json"),
                     "--downloads", str(tmp_path / "downloads"), "--no-progress"],
        "extract": ["--raw", missing, "--out", str(tmp_path / "patches"),
                    "--metrics", str(tmp_path / "extract.json")],
        "train": ["--data", missing, "--model", str(tmp_path / "g.pt")],
        "evaluate": ["--model", missing, "--patches", missing, "--metrics",
                     str(tmp_path / "eval.json")],
        "report": ["--metrics", missing],
    }[stage]
    if stage == "extract":
        args[1] = str(tmp_path / "tiny.zip")
        gan.data.sample.write_sample_zip(args[1], "iphone", train_pairs=2, test_pairs=1, seed=0)
    monkeypatch.setattr(gan.data.sources, "write_sample_zip", _stop_the_sample)
    log: set[str] = set()
    for changes in DOWNLOAD_RUNS if stage == "download" else [{}]:
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        params["data"].update({k: missing if v == "{missing}" else v for k, v in changes.items()})
        params["extract"]["workers"] = 1
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(params))
        monkeypatch.setattr(module, "load_params",
                            lambda p=path: _reads(stages.params.load_params(p), log))
        result = CliRunner().invoke(app, [stage, "--params", str(path), *args])
        assert result.exit_code != 0 or stage == "extract", changes  # it stopped there
        assert "Traceback" not in result.output and "must be" not in result.output, result.output
    return log


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_tracks_exactly_the_params_it_reads(stage, tmp_path, monkeypatch):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    listed: set[str] = set()
    for entry in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["params"]:
        assert isinstance(entry, str), f"{stage}: params from another file: {entry}"
        listed |= {f"{entry}.{k}" for k in params[entry]} if "." not in entry else {entry}
    read = params_read_by(stage, tmp_path, monkeypatch)
    assert sorted(read - listed) == [], "read but not tracked: a change would not rerun it"
    assert sorted(listed - read) == [], "tracked but not read: a change reruns it for nothing"


def test_metrics_and_curves_live_in_git_and_checkpoints_persist():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]

    def entries(kind: str):
        for stage in stages.values():
            for entry in stage.get(kind, []):
                yield (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))

    metrics = dict(entries("metrics"))
    assert set(metrics) == {"metrics/extract.json", "metrics/train.json", "metrics/eval.json"}
    assert all(opts.get("cache") is False for opts in metrics.values())
    plots = dict(entries("plots"))
    for curve in ("metrics/train/losses.csv", "metrics/train/validation.csv"):
        assert plots[curve].get("cache") is False
    outs = dict(entries("outs"))
    assert outs["models/checkpoints"].get("persist") is True
    assert outs["metrics/eval_per_patch.csv"].get("cache") is False


# -- a queued sweep over a loss weight -------------------------------------------------------------

@pytest.mark.slow
def test_a_queued_sweep_runs_one_experiment_per_value(reproduced, tmp_path):
    repo = copy_project(reproduced, tmp_path)
    baseline = exp_table(repo)["baseline"]
    out = run(dvc("exp", "run", "--queue", "-n", "sweep", "-S", "loss.adversarial=0.001,0.01"),
              repo)
    assert out.count("Queued experiment") == 2
    try:
        run(dvc("queue", "start"), repo)
        deadline = time.monotonic() + 400
        while re.search(r"\b(Queued|Running)\b", status := run(dvc("queue", "status"), repo)):
            assert time.monotonic() < deadline, status
            time.sleep(2)
    finally:
        subprocess.run(dvc("queue", "stop"), cwd=repo, capture_output=True)
    assert status.count("Success") == 2, status
    table = exp_table(repo)
    assert table["sweep-1"]["state"] == table["sweep-2"]["state"] == "success"
    sweep = {table[n]["params"]["params.yaml"]["loss"]["adversarial"]: table[n]["metrics"]
             for n in ("sweep-1", "sweep-2")}
    assert set(sweep) == {0.001, 0.01}
    total = "metrics/train.json"
    assert sweep[0.001][total] == baseline["metrics"][total]  # the baseline's own setting
    assert sweep[0.01][total]["loss"]["total"] != baseline["metrics"][total]["loss"]["total"]
    assert set(METHODS) <= set(sweep[0.01]["metrics/eval.json"]["aligned"])
