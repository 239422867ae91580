"""clowncar: distributed sweeps of weight-shared crawler language models (Parameter Golf)."""

__version__ = "0.1.0"
