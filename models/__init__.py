"""Models: data sets, training, the MLflow registry, and loading models for serving."""
