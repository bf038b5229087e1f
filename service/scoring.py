"""Building the classifier the settings ask for."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from classifiers.interface import Classifier, Thresholds
from classifiers.registry import active_model_dir
from service.errors import ConfigError, ModelError
from service.settings import ModelSettings, Settings

__all__ = ["ActiveClassifier", "active_model_dir", "effective_thresholds", "load_active", "load_classifier"]


@dataclass(frozen=True, slots=True)
class ActiveClassifier:
    """A loaded classifier and where it came from: a registry version name (``shipped``, ``v2-...``)
    and its directory, or ``factory`` and no directory when ``model.factory`` built it."""

    version: str
    path: Path | None
    classifier: Classifier


def load_active(settings: ModelSettings) -> ActiveClassifier:
    """``model.factory``'s classifier if set, else the model version the registry's ACTIVE names.

    ACTIVE is read on every call, so calling this again (a daemon reload) picks
    up `warningshot model use` and promoting retrains. A missing or damaged
    active version raises ModelError naming the version and the way back.
    """
    if settings.factory:
        module_name, _, attr = settings.factory.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"model.factory: cannot import {settings.factory}: {exc}") from exc
        classifier = factory(settings)
        if not isinstance(classifier, Classifier):
            raise ModelError(f"model.factory {settings.factory} did not return a Classifier")
        return ActiveClassifier("factory", None, classifier)
    from classifiers.model import WarningShotModel  # torch loads only when a model is needed

    version, path = active_model_dir(settings)
    try:
        model = WarningShotModel.load(
            path,
            base_cache=settings.base_cache,
            precision=settings.requested_precision,
            threads=settings.threads or None,
        )
    except ModelError as exc:
        if version == "shipped":
            raise
        raise type(exc)(f"active model version {version} cannot be loaded: {exc}; "
                        "roll back with `warningshot model use shipped`") from exc
    # classifiers.interface.model_version() reads this: records, logs and the API name the version
    model.version = version
    return ActiveClassifier(version, path, model)


def load_classifier(settings: ModelSettings) -> Classifier:
    """The active model version (the shipped one unless `warningshot model use` chose another),
    or the one ``model.factory`` names."""
    return load_active(settings).classifier


def effective_thresholds(classifier: Classifier, settings: Settings) -> Thresholds:
    """The model's shipped thresholds with the settings' overrides on top."""
    return classifier.thresholds.merged(settings.thresholds.as_thresholds())
