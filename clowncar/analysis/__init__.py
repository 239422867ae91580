"""Statistical signal tests over the results store and the report built from them.

Every test is a function of pandas frames (the store's trials / steps / evals / probes frames) and returns a
`TestResult`; `run_all` runs them all and applies the multiple-comparison correction. The analysis reads the
store's frames and nothing else, so imported legacy runs are analysed exactly like new ones."""

from clowncar.analysis.result import TestResult

__all__ = ["TestResult"]
