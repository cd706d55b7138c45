"""The headless core: images, models, inference, datasets, benchmarks and reports (no Qt)."""
