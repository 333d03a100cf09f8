"""Model resolution (``integration/registry.py``)."""

from __future__ import annotations

import subprocess
import sys


def test_resolving_a_recbole_model_leaves_anomaly_detection_as_it_was():
    """RecBole's SINE turns autograd's anomaly detection on when its models are imported, which
    makes every later training step of the process several times slower; resolving a RecBole
    model through the package must not. In a fresh process: the import happens once."""
    code = (
        "import torch\n"
        "from recbole_sasrec import get_model, run_recbole\n"
        "get_model('GRU4Rec')\n"
        "print(torch.is_anomaly_enabled())\n"
        "torch.autograd.set_detect_anomaly(True)\n"
        "import recbole.model.sequential_recommender.sine\n"
        "get_model('RecBole.SASRec')\n"
        "print(torch.is_anomaly_enabled())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]  # off stays off; the caller's on stays on
