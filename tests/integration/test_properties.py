"""The property files and the README's key table are the key declarations, and travel in the wheel."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from recbole_sasrec.integration import properties
from recbole_sasrec.integration.registry import MODELS, model_keys


@pytest.mark.parametrize("name", list(MODELS))
def test_property_files_are_the_declarations(name):
    """properties/<Model>.yaml is written from the declarations (python -m
    recbole_sasrec.integration.properties rewrites it), and reads back as their defaults."""
    path = REPO / "properties" / f"{name}.yaml"
    assert path.read_text() == properties.yaml_text(name)
    declared = {key.name: key.default for key in model_keys(MODELS[name])}
    assert yaml.safe_load(path.read_text()) == declared


def test_the_readme_key_table_is_the_declarations():
    readme = (REPO / "README.md").read_text()
    assert properties.readme_table() in readme


def test_every_key_is_declared_once_with_a_meaning():
    for model in MODELS.values():
        names = [key.name for key in model_keys(model)]
        assert len(names) == len(set(names)), names
        for key in model_keys(model):
            assert key.meaning and "\n" not in key.meaning and key.allowed, key.name
            key.check(
                {**{k.name: k.default for k in model_keys(model)}, "MAX_ITEM_LIST_LENGTH": 50}
            )


@pytest.mark.slow
def test_installed_wheel_carries_the_property_files(tmp_path):
    """`pip install .` puts properties/ inside the package; a run from elsewhere finds them."""
    repo = REPO
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(pip + ["wheel", "--no-deps", "-q", "-w", str(tmp_path), str(repo)], check=True)
    wheel = next(tmp_path.glob("recbole_sasrec-*.whl"))
    target = tmp_path / "site"
    subprocess.run(
        pip + ["install", "-q", "--no-deps", "--target", str(target), str(wheel)], check=True
    )
    probe = (
        "import recbole_sasrec; from recbole_sasrec import Config; "
        "print(recbole_sasrec.__file__); print(Config('LightSANs', 'ml-100k')['k_interests'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(target)},
    ).stdout.split()
    assert out[-2] == str(target / "recbole_sasrec" / "__init__.py")
    assert out[-1] == "5"
    for name in MODELS:  # the property files travel with the package, for RecBole's users
        installed = target / "recbole_sasrec" / "properties" / f"{name}.yaml"
        assert installed.read_text() == properties.yaml_text(name)


@pytest.mark.parametrize(
    "files",
    [
        ["presets/sasrec-paper.yaml"],
        ["presets/short-histories.yaml", "hyper/literature.yaml"],
        ["presets/short-histories.yaml", "presets/attributes.yaml", "hyper/literature.yaml"],
    ],
)
@pytest.mark.parametrize("name", list(MODELS))
def test_presets_hold_only_keys_that_are_read_with_allowed_values(name, files):
    """A preset's keys are checked as a user's would be; each one changes what it names."""
    from recbole_sasrec import Config

    paths = [str(REPO / f) for f in files]
    # a data set of one's own (a data_path given for ml-100k must hold an ml-100k)
    config = Config(name, "Beauty", paths, {"data_path": str(REPO / "data")})
    for path in paths:
        for key, value in yaml.safe_load(open(path)).items():
            if key == "eval_args":  # RecBole expands its mode for both splits
                expected = {"valid": value["mode"], "test": value["mode"]}
                assert set(value) == {"mode"} and config[key]["mode"] == expected, path
            elif key != "data_path":
                assert config[key] == value, (path, key)
