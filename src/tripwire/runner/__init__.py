"""The runner: the one part of Tripwire that talks to lm-eval.

``Runner.evaluate(checkpoint_dir, suite)`` loads the checkpoint once (one ``HFLM`` for every
task of the suite), runs lm-eval offline on only the task folders the suite needs, and returns a
typed ``SuiteResult`` with per-item outcomes keyed by lm-eval's document hash.
"""

from tripwire.runner.evaluate import Runner, check_checkpoint_files

__all__ = ["Runner", "check_checkpoint_files"]
