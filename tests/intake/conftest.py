from tests.jobs.conftest import workspace

__all__ = ["workspace"]
