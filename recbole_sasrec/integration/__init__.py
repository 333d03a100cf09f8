"""Plugging the models into RecBole: configuration and key checks, the model registry, loaders,
trainer, optimiser, distributed training, checkpoints and the quick-start functions."""
