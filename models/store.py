"""Model checkpoints: the ranker and how far into its inputs it has learned.

A River model is process-wide, not per message key, so it lives outside Quix state and is
checkpointed here: periodically and on shutdown, with the last input offset learned from per
topic partition. A restarted ranker loads the checkpoint and skips learning again from inputs
at or before those offsets.

>>> import tempfile; from pathlib import Path
>>> from models.ranker import OnlineRanker
>>> path = Path(tempfile.mkdtemp()) / "model.pkl"
>>> save_checkpoint(path, Checkpoint(OnlineRanker(), {"nbo.interactions/0": 41}))
>>> load_checkpoint(path).learned_offsets
{'nbo.interactions/0': 41}
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

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
