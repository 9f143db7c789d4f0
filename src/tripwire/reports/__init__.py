"""Job reports: what a checkpoint's evaluation and the policy's verdicts were, for reviewers.

``model`` holds the report data (filled from the store elsewhere); ``render`` writes it as JSON,
self-contained HTML and Markdown.
"""

from tripwire.reports.model import (
    ActionsRow,
    BaselineRef,
    CheckpointInfo,
    CheckpointReport,
    ComparisonRow,
    DecisionRow,
    DeepResult,
    JobRow,
    PolicyRef,
    RuleBand,
    RunReport,
    ScoreRow,
    SuiteRef,
    TrajectoryPoint,
)
from tripwire.reports.paths import checkpoint_href, checkpoint_stem, safe_name
from tripwire.reports.render import write_checkpoint_report, write_run_report, write_site_index

__all__ = [
    "ActionsRow",
    "BaselineRef",
    "CheckpointInfo",
    "CheckpointReport",
    "ComparisonRow",
    "DecisionRow",
    "DeepResult",
    "JobRow",
    "PolicyRef",
    "RuleBand",
    "RunReport",
    "ScoreRow",
    "SuiteRef",
    "TrajectoryPoint",
    "checkpoint_href",
    "checkpoint_stem",
    "safe_name",
    "write_checkpoint_report",
    "write_run_report",
    "write_site_index",
]
