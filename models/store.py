"""Model checkpoints: the ranker and how far into its inputs it has learned.

A River model is process-wide, not per message key, so it lives outside Quix state and is
checkpointed here: periodically and on shutdown, with the last input offset learned from per
topic partition. A restarted ranker loads the checkpoint and skips learning again from inputs
at or before those offsets.

Between two checkpoints, every label learned is appended to a `LabelJournal` before the stream
may commit its input offset. A killed ranker (kill -9) therefore loses no label: on restart it
learns again exactly the journal's labels that the checkpoint does not hold. The journal is
written without fsync, so this holds for a killed process, not for a machine losing power.

>>> import tempfile; from pathlib import Path
>>> from models.ranker import OnlineRanker
>>> path = Path(tempfile.mkdtemp()) / "model.pkl"
>>> save_checkpoint(path, Checkpoint(OnlineRanker(), {"nbo.interactions/0": 41}))
>>> load_checkpoint(path).learned_offsets
{'nbo.interactions/0': 41}
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from models.ranker import OnlineRanker


@dataclass
class Checkpoint:
    ranker: OnlineRanker
    learned_offsets: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> offset
    registry_version: str | None = None  # the registered version this model descends from


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        pickle.dump(checkpoint, handle, protocol=pickle.HIGHEST_PROTOCOL)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def load_checkpoint(path: Path) -> Checkpoint | None:
    if not path.exists():
        return None
    with open(path, "rb") as handle:
        checkpoint = pickle.load(handle)  # our own file, written by save_checkpoint
    if not isinstance(checkpoint, Checkpoint):
        raise TypeError(f"{path} is not an nbo model checkpoint")
    return checkpoint


class LabelJournal:
    """Labels learned since the last checkpoint, one JSON line each, written as they happen.

    >>> import tempfile; from pathlib import Path
    >>> journal = LabelJournal(Path(tempfile.mkdtemp()) / "labels.jsonl")
    >>> journal.append("nbo.interactions/0", 41, {"bias": 1.0}, True)
    >>> journal.append("nbo.interactions/0", 42, {"bias": 1.0}, False)
    >>> [(offset, y) for _, offset, _, y in journal.unlearned({"nbo.interactions/0": 41})]
    [(42, False)]
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # open for the ranker's life; line-buffered, so each label reaches the OS as it is learned
        self._handle: IO[str] = open(path, "a", buffering=1)  # noqa: SIM115

    def append(self, position: str, offset: int, x: dict[str, float], y: bool) -> None:
        self._handle.write(json.dumps([position, offset, x, y]) + "\n")

    def unlearned(
        self, learned_offsets: dict[str, int]
    ) -> Iterator[tuple[str, int, dict[str, float], bool]]:
        """Journal entries past the checkpoint's offsets, in the order they were learned."""
        with open(self.path) as handle:
            for line in handle:
                try:
                    position, offset, x, y = json.loads(line)
                except ValueError:
                    return  # a line cut short by the kill: nothing after it was written
                if offset > learned_offsets.get(position, -1):
                    yield position, offset, x, y

    def clear(self) -> None:
        """After a checkpoint: everything in the journal is in the checkpoint."""
        self._handle.truncate(0)

    def close(self) -> None:
        self._handle.close()
