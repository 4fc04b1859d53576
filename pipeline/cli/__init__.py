"""The `nbo` command (`app.py`) and what only it runs: the MLflow UI's server (`tracking_ui.py`)."""
