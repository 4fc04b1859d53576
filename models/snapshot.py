"""A ranker as text small enough for a Kafka record: cloudpickle, then zlib, then base64.

cloudpickle so that a feature set or a pipeline step written in a notebook travels by value;
zlib because a model's weights are mostly feature names that compress well.

>>> from models.ranker import make_ranker
>>> ranker = make_ranker("logistic")
>>> ranker.learn_one({"bias": 1.0, "category=card": 1.0}, True)
>>> decode_model(encode_model(ranker)).version
'logistic-1'
"""

from __future__ import annotations

import base64
import pickle
import zlib

import cloudpickle

from models.ranker import OnlineRanker


def encode_model(ranker: OnlineRanker) -> str:
    packed = cloudpickle.dumps(ranker, protocol=pickle.HIGHEST_PROTOCOL)
    return base64.b64encode(zlib.compress(packed, 6)).decode("ascii")


def decode_model(text: str) -> OnlineRanker:
    """The ranker `encode_model` wrote; ValueError when `text` is not one."""
    try:
        ranker = pickle.loads(zlib.decompress(base64.b64decode(text)))  # our own snapshots
    except (ValueError, zlib.error, pickle.UnpicklingError, EOFError) as error:
        raise ValueError(f"not a model snapshot: {error}") from error
    if not isinstance(ranker, OnlineRanker):
        raise ValueError(f"not a model snapshot: holds a {type(ranker).__name__}")
    return ranker
