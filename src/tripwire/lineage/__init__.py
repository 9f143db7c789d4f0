"""Where a checkpoint comes from: its parents across runs, its baseline, and the training
compute behind it (declared and estimated, cumulative along the lineage)."""

from tripwire.lineage.compute import ParameterCount, count_parameters, estimate_flop

__all__ = ["ParameterCount", "count_parameters", "estimate_flop"]
