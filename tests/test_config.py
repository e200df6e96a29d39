"""gan/config.py: each params.yaml key declared once (a field and its spec), checked once, and
the one home of the constants the torch modules use. The messages a user sees are tested
through the loader in tests/test_params.py; this file holds what is new with the configs."""

from __future__ import annotations

import ast
import copy
import dataclasses
import subprocess
import sys

import pytest
import yaml

from gan import config
from gan.config import (ConfigError, DiscriminatorConfig, ExtractConfig, ModelConfig, Params,
                        TrainConfig, shown)
from tests.conftest import ROOT

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def test_every_field_of_every_section_has_a_spec_and_no_default():
    for name, cls in Params.SECTIONS.items():
        assert cls.SECTION == name
        for f in dataclasses.fields(cls):
            assert isinstance(f.metadata.get("spec"), config.Spec), (name, f.name)
            assert f.default is dataclasses.MISSING, (name, f.name)  # params.yaml is the source
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen


def test_values_are_normalised_once_and_sections_are_frozen():
    train = TrainConfig(**{**PARAMS["train"], "lr_g": "1e-4", "steps": 100.0, "lr_d": 1})
    assert (train.lr_g, type(train.lr_g)) == (0.0001, float)
    assert (train.steps, type(train.steps)) == (100, int)
    assert (train.lr_d, type(train.lr_d)) == (1, int)  # an int given to a float key stays one
    with pytest.raises(dataclasses.FrozenInstanceError):
        train.steps = 5
    data = config.DataConfig(**{**PARAMS["data"], "sha256": " " + "AB" * 32, "archive": " "})
    assert data.sha256 == "ab" * 32 and data.archive is None


def test_an_error_is_one_line_with_the_value_bounded():
    with pytest.raises(ConfigError) as caught:
        ExtractConfig(**{**PARAMS["extract"], "workers": "x" * 500})
    message = str(caught.value)
    assert message.startswith("extract.workers must be an integer in 0..256 (0: all cores), "
                              "got 'xxx")
    assert len(message) < 200 and message.endswith("...")
    assert caught.value.key == "extract.workers"
    assert shown(None) == "null" and shown(True) == "true" and shown([1]) == "[1]"


def test_the_limits_between_sections_apply_when_both_are_there():
    sections = {name: copy.deepcopy(PARAMS[name]) for name in ("loss", "evaluate", "report")}
    sections["report"]["patches"] = 9  # evaluate.saved_patches is 8
    with pytest.raises(ConfigError, match=r"^report.patches must be an integer in 1\.\.8"):
        Params.from_dict(sections)
    del sections["evaluate"]
    assert Params.from_dict(sections).report.patches == 9  # nothing to hold it to
    assert Params.from_dict({}).loss is None


def test_the_model_section_gives_the_networks_configs():
    model = ModelConfig(**PARAMS["model"])
    assert model.generator_config() == config.DenseUNetConfig(
        **{k: PARAMS["model"][k] for k in ("depth", "base_width", "growth_rate",
                                           "layers_per_block", "global_residual",
                                           "guided_radius", "guided_eps")})
    resnet = dataclasses.replace(model, generator="dped_resnet")
    assert resnet.generator_config() == config.DpedResNetConfig(width=64, blocks=4)
    # pool is not a params.yaml key: a run's fingerprint never held it
    assert model.discriminator_args() == {"width": 32, "layers": 4, "input": "rgb"}
    assert model.discriminator_config() == DiscriminatorConfig(width=32, layers=4, input="rgb")


def test_the_constants_have_one_home():
    from gan.data import dped, pirm
    from gan.losses import GeneratorLoss
    from gan.networks import GENERATORS, DiscriminatorConfig as NetworksDiscriminatorConfig
    from gan.runtime import PRECISIONS

    assert GENERATORS is config.GENERATORS and PRECISIONS is config.PRECISIONS
    assert dped.PHONES is config.PHONES and pirm.PHONE == config.PIRM_PHONE
    assert NetworksDiscriminatorConfig is DiscriminatorConfig
    assert GeneratorLoss.TERMS is config.LOSS_TERMS
    assert config.spec_of(ModelConfig, "d_input").options == DiscriminatorConfig.INPUTS


def test_the_config_imports_only_the_standard_library():
    tree = ast.parse((ROOT / "gan" / "config.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
    done = subprocess.run([sys.executable, "-c", "import sys, gan.config, stages.params; "
                           "print(sorted(m for m in ('torch', 'numpy', 'gan.data') "
                           "if m in sys.modules))"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_a_network_field_and_its_params_key_share_one_spec_and_a_model_file_is_checked_too():
    # The model section's keys take what the networks' configs take: the same spec objects, so
    # a limit is stated once; and a config rebuilt from a model file is checked by them.
    model_fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    for key, (cls, name) in {"depth": (config.DenseUNetConfig, "depth"),
                             "guided_eps": (config.DenseUNetConfig, "guided_eps"),
                             "resnet_blocks": (config.DpedResNetConfig, "blocks"),
                             "d_input": (DiscriminatorConfig, "input")}.items():
        assert model_fields[key].metadata["spec"] is config.spec_of(cls, name), key
    with pytest.raises(ValueError, match=r"^DenseUNetConfig.global_residual must be true or "
                                         r"false, got 'yes'$"):
        config.DenseUNetConfig(global_residual="yes")
    with pytest.raises(ValueError,
                       match=r"^DiscriminatorConfig.layers must be an integer in 1\.\.12"):
        DiscriminatorConfig(layers=0)
    assert config.DenseUNetConfig(depth=2.0).depth == 2  # normalised as params.yaml's keys are
