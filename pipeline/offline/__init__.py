"""Offline evaluation: logged bandit feedback replayed through a ranker and a policy, with
off-policy estimates (`replay.py`), and the loop's own feedback replayed through a target model
(`feedback_replay.py`)."""
