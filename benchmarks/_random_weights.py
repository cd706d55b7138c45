"""For speed and memory only: a torch cache holding random-weight files under torchvision's names.

The app refuses to run a model without weights; these scripts give it files with the right keys and
shapes (random values) in a temporary TORCH_HOME, so they time and measure the real code paths.
Their predictions mean nothing, and the scripts never report accuracy from them.
"""

from __future__ import annotations

import os
import tempfile

import torch


def random_weights_cache(names: list[str]) -> str:
    """A fresh TORCH_HOME with random weights for ``names``; sets the variable and returns the folder."""
    home = tempfile.mkdtemp(prefix="cnnviewer-bench-torch-")
    os.environ["TORCH_HOME"] = home
    from cnnviewer.core.catalog import checkpoints_dir, get_entry
    from cnnviewer.core.models import build_for_weights

    folder = checkpoints_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        entry = get_entry(name)
        torch.save(build_for_weights(entry).state_dict(), folder / entry.weights_filename)
    return home
