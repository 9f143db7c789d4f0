"""Benchmark data kept locally: ``tripwire data import`` and the store lm-eval's built-in tasks
read offline.

``BENCHMARKS`` names what can be imported and which hub datasets each stands in for;
``import_benchmark`` reads local files in their public layouts into the ``DataStore`` under the
Tripwire home, in the layout ``datasets.load_dataset`` reads from a folder with no hub. The
runner points lm-eval's own task configurations at that folder: see docs/benchmarks.md.
"""

from tripwire.benchmarks.importer import import_benchmark
from tripwire.benchmarks.specs import BENCHMARKS, Benchmark, benchmark_for_dataset
from tripwire.benchmarks.store import DataStore, Manifest

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "DataStore",
    "Manifest",
    "benchmark_for_dataset",
    "import_benchmark",
]
