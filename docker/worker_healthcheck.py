#!/usr/bin/env python
"""Docker health check for a Tripwire Celery worker: exit 0 if a worker node on this host
answers a broker ping.

Matching on the host name, not on a full node name, keeps the check right however the worker
names its nodes (``celery@host``, or one node per GPU). A prefork worker's main process answers
while its pool child is busy with a long evaluation, so a busy worker is still healthy.
"""

from __future__ import annotations

import os
import socket
import sys

from celery import Celery

TIMEOUT_S = 5.0


def main() -> int:
    broker = os.environ.get("TRIPWIRE_BROKER_URL")
    if not broker:
        print("TRIPWIRE_BROKER_URL is not set", file=sys.stderr)
        return 1
    host = socket.gethostname()
    replies = Celery(broker=broker).control.ping(timeout=TIMEOUT_S)
    nodes = [node for reply in replies for node in reply]
    if any(node.endswith(f"@{host}") for node in nodes):
        return 0
    print(f"no worker on {host} answered (answers from: {nodes or 'none'})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
