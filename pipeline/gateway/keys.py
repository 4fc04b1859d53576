"""Each channel's API keys: stored hashed in a JSON file, rotated without a restart.

A key is 32 random bytes, so a plain SHA-256 of it is as good as a slow password hash (there is
nothing to guess from a dictionary) and costs microseconds per request. The file holds only the
hashes; `nbo gateway add-key CHANNEL` prints a new key once and stores its hash, and
`nbo gateway revoke-key ID` removes one. The gateway reads the file again whenever it changes,
so a rotation is: add the new key, move the channel to it, revoke the old one.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "keys.json"
>>> secret = add_key(path, "web").secret
>>> keys = ChannelKeys(path)
>>> keys.channel_of(secret)
'web'
>>> keys.channel_of("nbo_not-a-key") is None
True
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.contracts.schemas import Channel
from pipeline.errors import ConfigError

_PREFIX = "nbo_"


@dataclass(frozen=True)
class NewKey:
    key_id: str
    channel: str
    secret: str  # shown once; only its hash is stored


def hashed(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _read(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text())["keys"]
        return [{"id": e["id"], "channel": Channel(e["channel"]).value, "sha256": e["sha256"]}
                for e in entries]  # fmt: skip
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"gateway keys file {path}: not a keys file ({error})") from error


def _write(path: Path, entries: list[dict[str, str]]) -> None:
    """Atomically (a reader never sees half a file), readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({"keys": entries}, indent=2) + "\n")
    temporary.chmod(0o600)
    os.replace(temporary, path)


def add_key(path: Path, channel: str) -> NewKey:
    """A new key for `channel`, its hash stored in `path`."""
    try:
        channel = Channel(channel).value
    except ValueError:
        raise ConfigError(
            f"unknown channel {channel!r}; one of {', '.join(c.value for c in Channel)}"
        ) from None
    key_id = f"{channel}-{secrets.token_hex(4)}"
    secret = _PREFIX + secrets.token_urlsafe(32)
    _write(path, [*_read(path), {"id": key_id, "channel": channel, "sha256": hashed(secret)}])
    return NewKey(key_id, channel, secret)


def revoke_key(path: Path, key_id: str) -> None:
    entries = _read(path)
    kept = [entry for entry in entries if entry["id"] != key_id]
    if len(kept) == len(entries):
        raise ConfigError(f"no key {key_id!r} in {path}")
    _write(path, kept)


class ChannelKeys:
    """The channel of a presented key, from the keys file as it is now: looked at again for an
    unknown key (a key just added works at once) and every `recheck` seconds (a revoked key is
    refused within that), and read when its modification time or size changed."""

    def __init__(self, path: Path, recheck: float = 1.0) -> None:
        self.path = path
        self._recheck = recheck
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._looked = float("-inf")
        self._channels: dict[str, str] = {}
        self._reload()

    def channel_of(self, secret: str) -> str | None:
        """The channel `secret` belongs to; None for an unknown or revoked key."""
        digest = hashed(secret)
        if time.monotonic() - self._looked >= self._recheck or digest not in self._channels:
            self._reload()  # a stat; the file is read only when it changed
        return self._channels.get(digest)

    def __len__(self) -> int:
        return len(self._channels)

    def _reload(self) -> None:
        with self._lock:
            self._looked = time.monotonic()
            try:
                stat = self.path.stat()
                seen: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
            except FileNotFoundError:
                seen = None
            if seen != self._seen:
                self._channels = {e["sha256"]: e["channel"] for e in _read(self.path)}
                self._seen = seen
