"""Building the classifier the settings ask for."""

from __future__ import annotations

import importlib

from classifiers.interface import Classifier, Thresholds
from service.errors import ConfigError, ModelError
from service.settings import ModelSettings, Settings


def load_classifier(settings: ModelSettings) -> Classifier:
    """The shipped model, or the one ``model.factory`` names."""
    if settings.factory:
        module_name, _, attr = settings.factory.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"model.factory: cannot import {settings.factory}: {exc}") from exc
        classifier = factory(settings)
        if not isinstance(classifier, Classifier):
            raise ModelError(f"model.factory {settings.factory} did not return a Classifier")
        return classifier
    from classifiers.model import WarningShotModel  # torch loads only when a model is needed

    return WarningShotModel.load(
        settings.path,
        base_cache=settings.base_cache,
        quantize=settings.quantize,
        threads=settings.threads or None,
    )


def effective_thresholds(classifier: Classifier, settings: Settings) -> Thresholds:
    """The model's shipped thresholds with the settings' overrides on top."""
    return classifier.thresholds.merged(settings.thresholds.as_thresholds())
