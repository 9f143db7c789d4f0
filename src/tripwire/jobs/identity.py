"""Before a job scores: is the checkpoint still the content, and the suite still the files, that
the job was created for?

A job names its checkpoint by content hash and its suite by path and content hash, but it runs
later, on whatever the disk holds then. New weights written over an old path are a new
checkpoint; an edited suite is a new suite. Scoring either under the old identity would store
wrong numbers under a right-looking name, so the job checks both first and is refused (a
permanent failure with the reason) when neither the checkpoint's locations nor the suite match.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tripwire.errors import CheckpointChangedError, CheckpointGoneError, SuiteChangedError
from tripwire.failures import is_transient
from tripwire.sources import HashCache
from tripwire.sources.hashing import FileChangedError
from tripwire.sources.identity import Fingerprint, LocationCheck, check_location
from tripwire.store.models import Checkpoint, CheckpointLocation, Job
from tripwire.suites import LoadedSuite, load_suite, suite_files
from tripwire.systems import is_system

log = logging.getLogger(__name__)

FINGERPRINTS = "fingerprints"
"""Key in ``Checkpoint.meta``: {location path: ``Fingerprint`` as JSON}, recorded at ingest."""


def remember_location(
    session: Session, checkpoint: Checkpoint, path: str, fingerprint: Fingerprint | None
) -> None:
    """Record the fingerprint of the files at ``path`` in the checkpoint's ``meta``.

    The row is locked first (on PostgreSQL), so this read-modify-write never drops a key that
    another transaction (a decision placing a review hold) writes at the same time.
    """
    if fingerprint is None:
        return
    session.refresh(checkpoint, with_for_update=True)
    known = dict(checkpoint.meta.get(FINGERPRINTS) or {})
    value = fingerprint.model_dump(mode="json")
    if known.get(path) != value:
        known[path] = value
        checkpoint.meta = {**checkpoint.meta, FINGERPRINTS: known}


def first_fingerprint(path: str, fingerprint: Fingerprint | None) -> dict[str, Any]:
    """The ``meta`` entry of a checkpoint recorded for the first time at ``path``."""
    return (
        {} if fingerprint is None else {FINGERPRINTS: {path: fingerprint.model_dump(mode="json")}}
    )


@dataclass(frozen=True)
class Subject:
    """What a job was created for, copied from its row: hashing runs outside any transaction."""

    job_id: int
    content_hash: str
    label: str
    """``run step N``, for messages."""
    locations: list[str]
    """Where the content was seen, the first location first."""
    fingerprints: dict[str, Fingerprint]
    suite_path: Path
    suite_hash: str | None
    created_at: datetime
    system: str | None = None
    """A served system's URI (``tripwire.systems``): scored at its endpoint, no folder."""


def subject_of(job: Job) -> Subject:
    checkpoint = job.checkpoint
    assert job.suite_path is not None
    known = [checkpoint.path, *(loc.path for loc in checkpoint.locations)]
    locations = list(dict.fromkeys(p for p in known if "://" not in p))  # URIs: not local
    raw = (checkpoint.meta or {}).get(FINGERPRINTS) or {}
    return Subject(
        job_id=job.id,
        content_hash=checkpoint.content_hash,
        label=f"{checkpoint.run.name} step {checkpoint.step}",
        locations=locations,
        fingerprints={path: Fingerprint.model_validate(fp) for path, fp in raw.items()},
        suite_path=Path(job.suite_path),
        suite_hash=job.suite_hash,
        created_at=job.created_at,
        system=checkpoint.path if is_system(checkpoint.path) else None,
    )


# ---------------------------------------------------------------- the checkpoint


def locate(subject: Subject, cache: HashCache) -> LocationCheck:
    """The first known location that still holds the job's content.

    Each location's fingerprint is compared first; its content hash is recomputed only when the
    fingerprint differs. Raises ``CheckpointChangedError`` when no location holds the content,
    and the I/O error itself when a location could not be read for a reason that may pass (the
    job is then retried rather than refused).
    """
    checks: list[LocationCheck] = []
    unreadable: list[tuple[str, OSError]] = []
    for location in subject.locations:
        try:
            check = check_location(
                Path(location),
                subject.content_hash,
                subject.fingerprints.get(location),
                cache,
            )
        except OSError as exc:
            unreadable.append((location, exc))
            continue
        if check.matches:
            if location != subject.locations[0]:
                log.info("job %s: scoring %s from %s", subject.job_id, subject.label, location)
            return check
        checks.append(check)
    passing = [error for _, error in unreadable if is_transient(error)]
    if passing:
        raise passing[0]  # may pass: retry later rather than refuse
    if not unreadable and all(check.how == "missing" for check in checks):
        raise CheckpointGoneError(subject.locations[0], _gone(subject))
    raise CheckpointChangedError(subject.locations[0], _refusal(subject, checks, unreadable))


def _gone(subject: Subject) -> str:
    return (
        f"gone: {subject.label} ({subject.content_hash}) is no longer at "
        f"{', '.join(subject.locations)} (deleted or moved away); nothing was scored. This is "
        "not a fault of the model: if the same content appears again under a watched folder, "
        "the watcher takes it again"
    )


def after_error(subject: Subject, scored: LocationCheck, cache: HashCache) -> None:
    """An evaluation raised: was it because its folder went away meanwhile?

    Returns quietly when the folder still holds the content (the error is the model's or the
    runner's). Raises ``FileChangedError`` (transient: the job is retried) when another known
    location still holds it, and ``CheckpointGoneError`` / ``CheckpointChangedError`` when none
    does.
    """
    try:
        again = check_location(scored.path, subject.content_hash, scored.fingerprint, cache)
    except OSError:
        again = None
    if again is not None and again.matches:
        return
    located = locate(subject, cache)  # raises when no location holds the content any more
    raise FileChangedError(
        f"{scored.path} went away while {subject.label} was scored from it; retrying from "
        f"{located.path}"
    )


def _refusal(
    subject: Subject, checks: list[LocationCheck], unreadable: list[tuple[str, OSError]]
) -> str:
    expected = subject.content_hash
    seen = [check.describe(expected) for check in checks]
    seen += [f"{path} cannot be read ({type(exc).__name__}: {exc})" for path, exc in unreadable]
    replaced = [str(check.path) for check in checks if check.found_hash is not None]
    after = (
        f" New weights at a watched path are a new checkpoint: the watcher records "
        f"{', '.join(replaced)} under the new hash (at its next scan, if it has not yet), with "
        "its own proxy evaluation."
        if replaced
        else ""
    )
    return (
        f"job refused: {subject.label} ({expected}) is at none of its known locations: "
        f"{'; '.join(seen)}. The job fails for good rather than score other weights under this "
        f"checkpoint's name.{after}"
    )


def check_unchanged(subject: Subject, scored: LocationCheck, cache: HashCache) -> None:
    """After scoring: the folder scored still holds the content (else ``FileChangedError``,
    a transient error: the scores are discarded and the job retried)."""
    again = check_location(scored.path, subject.content_hash, scored.fingerprint, cache)
    if again.how == "missing":  # removed after it was loaded (a retention sweep): no new content
        log.info("%s was removed while %s was scored from it", scored.path, subject.label)
        return
    if not again.matches:
        raise FileChangedError(
            f"{scored.path} changed while {subject.label} was scored from it "
            f"({again.describe(subject.content_hash)}); the scores are discarded"
        )


# ---------------------------------------------------------------- the suite


def job_suite(subject: Subject, known: Iterable[LoadedSuite]) -> LoadedSuite:
    """The job's suite as it is on disk now, refused if its content hash is not the job's.

    ``known`` are the suites this process loaded at its start: when one has the job's hash, the
    files that changed are named exactly; otherwise the files modified after the job was created
    are.
    """
    suite = load_suite(subject.suite_path)
    if subject.suite_hash is None or suite.content_hash == subject.suite_hash:
        return suite
    before = next((s for s in known if s.content_hash == subject.suite_hash), None)
    changed = _changed_files(before, suite) if before else _modified_since(suite, subject)
    raise SuiteChangedError(
        suite.path,
        f"job refused: the suite changed since the job was created ({changed}; content hash "
        f"expected {subject.suite_hash}, found {suite.content_hash}), so its scores would not "
        "be those of the suite the job was made for. Restart the workers and the watcher with "
        "the edited suite so that new jobs are created for it: the watcher creates a new proxy "
        "job for every checkpoint it sees, and decisions made after the restart dispatch the "
        "edited deep suites",
    )


def _changed_files(before: LoadedSuite, now: LoadedSuite) -> str:
    old, new = before.file_hashes, now.file_hashes
    parts = [
        f"{name} changed" for name in sorted(old.keys() & new.keys()) if old[name] != new[name]
    ]
    parts += [f"{name} was added" for name in sorted(new.keys() - old.keys())]
    parts += [f"{name} was removed" for name in sorted(old.keys() - new.keys())]
    return ", ".join(parts) or "its files changed"


def _modified_since(suite: LoadedSuite, subject: Subject) -> str:
    modified = [
        file
        for file in suite_files(suite)
        if datetime.fromtimestamp(file.stat().st_mtime, UTC) > subject.created_at
    ]
    if not modified:
        return f"{suite.path.name} or a file it includes changed"
    base = suite.path.parent
    shown = [str(f.relative_to(base)) if f.is_relative_to(base) else str(f) for f in modified]
    return f"modified since: {', '.join(shown)}"


def remember_uri(session: Session, checkpoint: Checkpoint, uri: str) -> None:
    """Note the object-store URI a checkpoint was downloaded from as one of its locations
    (parents may name it; jobs never read from it: they use the local copy)."""
    seen = session.scalar(
        select(CheckpointLocation.id).where(
            CheckpointLocation.checkpoint_id == checkpoint.id, CheckpointLocation.path == uri
        )
    )
    if seen is None:
        session.add(CheckpointLocation(checkpoint_id=checkpoint.id, path=uri))
