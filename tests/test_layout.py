"""Imports run one way (DESIGN.md): core <- data <- models <- training <- run, evaluate,
metrics <- report, serve, cli. A lower layer that imports a higher one is a tangle a newcomer
cannot read bottom-up, and a cycle waiting to happen."""

import json
import subprocess
import sys

# module -> packages it must not load (directly or through anything it imports)
RULES = {
    "genlab.data": ("genlab.models", "genlab.training", "genlab.metrics", "genlab.run"),
    "genlab.data.text": ("genlab.models", "genlab.training"),
    "genlab.registry": ("genlab.training", "genlab.run", "genlab.metrics"),
    "genlab.run": ("genlab.training", "genlab.metrics", "genlab.report"),
    "genlab.hf.gpt2": ("genlab.training", "genlab.run", "genlab.metrics"),
    "genlab.evaluate": ("genlab.training", "genlab.report"),
    "genlab.metrics.protocol": ("genlab.training", "genlab.report"),
    "genlab.metrics.text_protocol": ("genlab.training", "genlab.report"),
    "genlab.metrics.features": ("genlab.training", "genlab.report"),
    "genlab.metrics.human": ("genlab.training", "genlab.report", "genlab.serve"),
    # report and serve are siblings: neither builds on the other
    "genlab.report.html": ("genlab.serve", "genlab.cli"),
    "genlab.serve.app": ("genlab.report", "genlab.cli", "genlab.training"),
}

# one fresh interpreter; genlab's modules are dropped between imports (torch stays loaded)
PROBE = """
import importlib, json, sys
import torch  # noqa: F401
out = {}
for module in json.loads(sys.argv[1]):
    for m in [m for m in sys.modules if m == "genlab" or m.startswith("genlab.")]:
        del sys.modules[m]
    importlib.import_module(module)
    out[module] = [m for m in sys.modules if m.startswith("genlab.")]
print(json.dumps(out))
"""


def test_lower_layers_do_not_import_higher_ones():
    res = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(RULES))],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = json.loads(res.stdout)
    bad = {
        module: sorted(m for m in loaded[module] for p in banned if m == p or m.startswith(p + "."))
        for module, banned in RULES.items()
    }
    assert not any(bad.values()), {k: v for k, v in bad.items() if v}
