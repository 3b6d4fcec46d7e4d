"""Development tools: the demo and the matching evaluator. They drive the sandbox, so they are not part
of the product package (setup.py leaves them out of the scrapyd egg)."""
