from tests.jobs.conftest import workspace
from tests.sources.s3 import bucket, s3_server

__all__ = ["bucket", "s3_server", "workspace"]
