"""Sweeps on Ray Tune with Optuna: specs, the trainable that launches the worker, the store callback, resume,
reruns, job submission. Heavy libraries (ray, optuna) are imported by the modules that need them, never here."""
