"""Model versions: the registry directory, ACTIVE, `warningshot model list|use`, load_classifier.

The models are tiny real ones (the real base encoder with random adapters and
head, as in test_model.py), saved the way training saves them; versions are
copies of that directory with their own thresholds, so which one loaded can be
told from its thresholds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from classifiers.base_model import sha256_file
from classifiers.interface import model_version
from classifiers.model import HEAD_FILE, MANIFEST_FILE, THRESHOLDS_FILE, WarningShotModel
from classifiers.registry import (
    ACTIVE_FILE,
    HISTORY_FILE,
    PROMOTED,
    REFUSED,
    SHIPPED,
    Registry,
    Version,
    active_model_dir,
)
from service.cli import main
from service.errors import ModelError, ModelFilesError
from service.scoring import load_active, load_classifier
from service.settings import ModelSettings

SHIPPED_ABUSIVE = 0.5
RELOAD_HINT = "systemctl reload warningshot"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = WarningShotModel.create(seed=0)
    return model.save(tmp_path_factory.mktemp("tiny") / "warningshot")


@pytest.fixture()
def shipped(tiny_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "models" / "warningshot"
    shutil.copytree(tiny_dir, path)
    _set_thresholds(path, SHIPPED_ABUSIVE)
    return path


@pytest.fixture()
def registry(shipped: Path, tmp_path: Path) -> Registry:
    return Registry(tmp_path / "var" / "models", shipped)


@pytest.fixture()
def config(registry: Registry, tmp_path: Path) -> Path:
    path = tmp_path / "warningshot.toml"
    path.write_text(f'[model]\npath = "{registry.shipped_dir}"\nregistry = "{registry.root}"\n'
                    f'[store]\nurl = "sqlite:///{tmp_path / "store.db"}"\n')
    return path


def _rehash(path: Path, name: str) -> None:
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    manifest["files"][name] = sha256_file(path / name)
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))


def _set_thresholds(path: Path, abusive: float) -> None:
    thresholds = json.loads((path / THRESHOLDS_FILE).read_text())
    thresholds["default"]["abusive"] = abusive
    (path / THRESHOLDS_FILE).write_text(json.dumps(thresholds))
    _rehash(path, THRESHOLDS_FILE)


def add_version(registry: Registry, abusive: float, status: str = PROMOTED) -> Version:
    """A registry version holding a copy of the shipped model with its own abusive threshold."""
    version = registry.create_version({"status": status, "parent": SHIPPED,
                                       "note": "refused: macro-F1 ar (79 emails): 0.838 -> 0.500"
                                       if status == REFUSED else ""})
    for file in registry.shipped_dir.iterdir():
        shutil.copy2(file, version.path / file.name)
    _set_thresholds(version.path, abusive)
    return registry.get(version.name)


def model_settings(registry: Registry, **extra: object) -> ModelSettings:
    return ModelSettings(path=registry.shipped_dir, registry=registry.root, **extra)


def run(config: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["-c", str(config), *args])


# ---- the directory ------------------------------------------------------------------

def test_without_active_file_the_shipped_model_is_active(registry: Registry) -> None:
    assert not registry.root.exists()
    assert active_model_dir(model_settings(registry)) == (SHIPPED, registry.shipped_dir)
    assert [v.name for v in registry.versions()] == [SHIPPED]


def test_versions_are_numbered_after_the_shipped_one_and_stamped_in_utc(registry: Registry) -> None:
    first, second = add_version(registry, 0.6), add_version(registry, 0.7)
    assert first.name.startswith("v2-") and second.name.startswith("v3-")
    assert first.name.endswith("Z") and len(first.name) == len("v2-20261123T1930Z")
    assert [v.name for v in registry.versions()] == [SHIPPED, first.name, second.name]
    assert json.loads((first.path / "report.json").read_text())["version"] == first.name


def test_active_is_replaced_atomically_and_logged(registry: Registry) -> None:
    version = add_version(registry, 0.6)
    registry.set_active(version.name, how="test")
    registry.set_active(SHIPPED, how="test")
    assert (registry.root / ACTIVE_FILE).read_text() == "shipped\n"
    assert not [p for p in registry.root.iterdir() if p.name.endswith(".tmp")]
    history = [json.loads(line) for line in (registry.root / HISTORY_FILE).read_text().splitlines()]
    assert [(h["from"], h["to"]) for h in history] == [(SHIPPED, version.name), (version.name, SHIPPED)]


def test_an_active_file_naming_no_version_is_a_clear_error(registry: Registry) -> None:
    registry.root.mkdir(parents=True)
    (registry.root / ACTIVE_FILE).write_text("../../etc\n")
    with pytest.raises(ModelError, match=r"not a model version.*model use shipped"):
        active_model_dir(model_settings(registry))
    (registry.root / ACTIVE_FILE).write_text("v9-20261123T1930Z\n")
    with pytest.raises(ModelFilesError, match=r"active model version v9-20261123T1930Z .*does not exist"):
        active_model_dir(model_settings(registry))


# ---- load_classifier ------------------------------------------------------------------

def test_load_classifier_follows_active_on_every_call(registry: Registry) -> None:
    settings = model_settings(registry)
    version = add_version(registry, 0.61)
    assert load_classifier(settings).thresholds.default["abusive"] == SHIPPED_ABUSIVE
    registry.set_active(version.name, how="test")
    loaded = load_active(settings)  # what a daemon reload calls
    assert (loaded.version, loaded.path) == (version.name, version.path)
    assert loaded.classifier.thresholds.default["abusive"] == 0.61
    assert model_version(loaded.classifier) == version.name  # what records, logs and the API show
    registry.set_active(SHIPPED, how="test")
    shipped = load_classifier(settings)
    assert shipped.thresholds.default["abusive"] == SHIPPED_ABUSIVE and model_version(shipped) == SHIPPED


def test_a_corrupt_active_version_fails_to_load_with_the_way_back(registry: Registry) -> None:
    version = add_version(registry, 0.61)
    registry.set_active(version.name, how="test")
    with (version.path / HEAD_FILE).open("r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\0\1\2\3")
    with pytest.raises(ModelFilesError) as err:
        load_classifier(model_settings(registry))
    message = str(err.value)
    assert f"active model version {version.name} cannot be loaded" in message
    assert "head.safetensors is corrupt" in message and "model use shipped" in message


def test_model_factory_still_comes_first(registry: Registry) -> None:
    registry.root.mkdir(parents=True)
    (registry.root / ACTIVE_FILE).write_text("v9-20261123T1930Z\n")  # would fail if it were read
    loaded = load_active(model_settings(registry, factory="marker_classifier:build"))
    assert loaded.version == "factory" and loaded.path is None


# ---- `warningshot model list|use` ----------------------------------------------------------

def test_model_use_switches_lists_and_rolls_back(registry: Registry, config: Path) -> None:
    version = add_version(registry, 0.62)
    result = run(config, "model", "use", version.name)
    assert result.exit_code == 0, result.output
    assert f"active model: {version.name} (was shipped)" in result.output
    assert RELOAD_HINT in result.output and "/v1/model/reload" in result.output
    assert registry.active_name() == version.name
    listed = json.loads(run(config, "model", "list", "--json").output)
    assert [(row["version"], row["active"]) for row in listed] == [(SHIPPED, False), (version.name, True)]
    table = run(config, "model", "list").output.splitlines()
    assert table[0].split()[:6] == ["VERSION", "CREATED", "ACTIVE", "STATUS", "MACRO-F1", "HN-FPR"]
    assert any(line.startswith(version.name) and " * " in line for line in table)

    back = run(config, "model", "use", "shipped")
    assert back.exit_code == 0, back.output
    assert registry.active_name() == SHIPPED
    assert active_model_dir(model_settings(registry)) == (SHIPPED, registry.shipped_dir)


def test_model_use_of_a_corrupt_version_fails_and_keeps_active(registry: Registry, config: Path) -> None:
    good, bad = add_version(registry, 0.63), add_version(registry, 0.64)
    registry.set_active(good.name, how="test")
    (bad.path / HEAD_FILE).write_bytes(b"not a safetensors file")
    result = run(config, "model", "use", bad.name)
    assert result.exit_code == 1
    assert f"model version {bad.name} does not load" in result.output
    assert "head.safetensors is corrupt" in result.output
    assert f"the active model is unchanged ({good.name})" in result.output
    assert registry.active_name() == good.name


def test_model_use_of_a_refused_version_needs_force(registry: Registry, config: Path) -> None:
    refused = add_version(registry, 0.65, status=REFUSED)
    result = run(config, "model", "use", refused.name)
    assert result.exit_code == 1
    assert "--force" in result.output and "macro-F1 ar" in result.output
    assert registry.active_name() == SHIPPED
    forced = run(config, "model", "use", "--force", refused.name)
    assert forced.exit_code == 0, forced.output
    assert registry.active_name() == refused.name


def test_model_use_of_an_unknown_version_names_the_known_ones(registry: Registry, config: Path) -> None:
    version = add_version(registry, 0.66)
    result = run(config, "model", "use", "v7-20300101T0000Z")
    assert result.exit_code == 1
    assert "no model version 'v7-20300101T0000Z'" in result.output
    assert f"known versions: shipped, {version.name}" in result.output


def test_model_list_shows_recorded_test_numbers(registry: Registry, config: Path) -> None:
    version = add_version(registry, 0.67)
    languages = {"ar": {"emails": 79, "macro_f1": 0.801}, "nl": {"emails": 18, "macro_f1": 0.9}}
    registry.update_report(version.name, test={"candidate": {"macro_f1": 0.912, "hard_negative_fpr": 0.071,
                                                             "languages": languages}})
    rows = {row["version"]: row for row in json.loads(run(config, "model", "list", "--json").output)}
    assert rows[version.name]["test"]["macro_f1"] == 0.912
    line = next(line for line in run(config, "model", "list").output.splitlines() if line.startswith(version.name))
    assert "0.912" in line and "0.071" in line and "0.801" in line
