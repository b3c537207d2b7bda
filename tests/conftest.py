"""Suite-wide settings."""

from __future__ import annotations

import os

import torch

# pytest-xdist runs one worker per core: one intra-op thread each avoids oversubscription,
# which makes small-model training many times slower on a 2-core machine.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
# Tiny Adam second moments go denormal; x86 CPUs crawl on them (the trainer does the same).
torch.set_flush_denormal(True)
