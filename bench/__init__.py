"""Benchmarks that print one JSON object: `python -m bench` (see bench/__main__.py)."""

import os

# litellm must not reach the network for its price list; set before anything imports it.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
