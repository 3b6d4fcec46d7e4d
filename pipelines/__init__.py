"""Item pipelines, one class per module, enabled in crawler/settings.py in data-flow order."""
