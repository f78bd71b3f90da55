"""contrastlab: ablation studies of contrastive fine-tuning for transformer text classifiers."""

__version__ = "0.1.0"
