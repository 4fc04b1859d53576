"""Which instance of a μ-product this process is: an identity that outlives a crash.

A restarted process must be recognised by Kafka as the one that died, or recovery waits for
timeouts. With one stable id per instance:

- its **transactional id** is the same after a restart, so the new producer fences the dead
  one's and aborts its open transaction at once; with a fresh id that transaction would block
  every `read_committed` reader of its partitions until the broker's transaction timeout;
- its **static group membership** (`group.instance.id`) is the same, so a restart within the
  session timeout gets the same partitions back with no rebalance: the other instances keep
  deciding, and the restarted one finds its own local state;
- its **state directory** is its own, as a pod's volume is in a Kubernetes StatefulSet.

(Not on the embedded broker: see `instance_of`.)

The id is `NBO_INSTANCE_ID` when set (a pod's name: `nbo-ranker-0`), else `<hostname>-<slot>`
with the lowest slot no live process on this host holds. Either way the process holds a lock
on `<state>/<cluster>/<stage>/<id>.lock` while it runs: the kernel releases it when the process
dies, even by SIGKILL, so a restart takes the same slot again, and a second live process with
the same id is refused with `InstanceTaken` instead of fencing the first in a loop.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> with claim(root, "ranker", host="h") as first, claim(root, "ranker", host="h") as second:
...     first.id, second.id
('h-0', 'h-1')
>>> with claim(root, "ranker", host="h") as again:  # both ended: slot 0 is free again
...     again.id, again.state_dir.relative_to(root).as_posix()
('h-0', 'h-0')
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from pipeline.errors import InstanceTaken
from pipeline.kafka.broker import EMBEDDED_CLUSTER_PREFIX
from pipeline.settings import Settings

# More instances of one μ-product on one host than this is a configuration mistake, not a need.
MAX_SLOTS = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Instance:
    """One running instance of a μ-product: its id, its local state, and whether it is a static
    member of its consumer group."""

    stage: str
    id: str
    state_dir: Path
    static: bool = True


def _safe(text: str) -> str:
    """`text` as a file name and a Kafka id (letters, digits, `.`, `_`, `-`)."""
    return _UNSAFE.sub("-", text)


def _try_lock(path: Path) -> IO[str] | None:
    """An open, exclusively locked `path` (with this pid written in it), or None if another
    live process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held open for as long as the instance runs
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def claim(
    stage_dir: Path, stage: str, instance_id: str | None = None, host: str | None = None
) -> Iterator[Instance]:
    """Be an instance of `stage` whose local state lives under `stage_dir` until the block ends:
    `instance_id` if given (refused with `InstanceTaken` while another live process is it),
    else the first free `<host>-<slot>`."""
    if instance_id is not None:
        candidates = [_safe(instance_id)]
    else:
        prefix = _safe(host or socket.gethostname())
        candidates = [f"{prefix}-{slot}" for slot in range(MAX_SLOTS)]
    for candidate in candidates:
        lock_path = stage_dir / f"{candidate}.lock"
        handle = _try_lock(lock_path)
        if handle is None:
            continue
        try:
            yield Instance(stage=stage, id=candidate, state_dir=stage_dir / candidate)
        finally:
            handle.close()  # releases the lock
        return
    if instance_id is not None:
        raise InstanceTaken(
            f"{stage}: instance {candidates[0]!r} is already running on this host (pid "
            f"{_holder(stage_dir / f'{candidates[0]}.lock')}); give each instance its own "
            "NBO_INSTANCE_ID, or leave it unset to take a free slot"
        )
    raise InstanceTaken(
        f"{stage}: all {MAX_SLOTS} instance slots on this host are taken (locks in {stage_dir})"
    )


def stage_dir(settings: Settings, stage: str, cluster: str) -> Path:
    """Where the instances of `stage` keep their local state, per Kafka cluster (its id).

    State restored from a changelog is only valid for the cluster that holds the changelog: an
    embedded broker forgets its topics when it stops (and gets a new cluster id when it starts),
    so its old local state must not be reused.
    """
    return settings.state_dir / cluster / stage


@contextmanager
def instance_of(settings: Settings, stage: str, cluster: str) -> Iterator[Instance]:
    """This process as an instance of `stage` on `cluster`, as the settings name it.

    On the embedded broker the instances are not static members: Tansu (0.6) stops assigning
    a group's partitions for good once a static member rejoins. Its partitions move on every
    restart instead, so its instances, all on this host by definition, share one state
    directory: whoever is given a partition opens that partition's store, state and all.
    """
    directory = stage_dir(settings, stage, cluster)
    with claim(directory, stage, settings.instance_id) as instance:
        if cluster.startswith(EMBEDDED_CLUSTER_PREFIX):
            instance = replace(instance, state_dir=directory / "shared", static=False)
        yield instance
