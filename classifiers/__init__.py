"""The WarningShot classifier: base model, fine-tuning, evaluation and inference."""
