# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv from the system python3 and install the exact versions in requirements.lock
# (the ones the suite passed with) with uv, then nbo itself; the stamp file makes a repeated run
# skip an install that is already up to date with the lock and pyproject.toml.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
UV := $(BIN)/uv
# The lock also pins the install machinery (pip, setuptools to build nbo, uv to install); the
# bootstrap installs the locked uv with the venv's own pip.
INSTALL_TOOLS := pip setuptools uv
UV_PIN = $(shell grep -m1 '^uv==' $(LOCK) | cut -d' ' -f1)

.PHONY: demo test lint format bench bakeoff learnability impact soak broker-soak chaos install lock kafka kafka-stop clean

$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check '$(UV_PIN)'
	$(UV) pip sync --quiet --python $(BIN)/python $(LOCK)
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# After changing a dependency range in pyproject.toml, or to take newer releases: run it, then
# `make test`, and commit requirements.lock with the change that needed it.
lock: $(STAMP)
	printf '%s\n' $(INSTALL_TOOLS) | $(UV) pip compile --quiet pyproject.toml - --extra dev \
		--universal --python-version 3.11 --generate-hashes --upgrade -o $(LOCK)

demo: $(STAMP)
	$(BIN)/nbo demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy features models pipeline benchmarks local_kafka

# pytest exits 5 when it collects no test; make treats that as a failure like any other.
test: lint
	$(BIN)/python -m pytest

# A local Apache Kafka in KRaft mode (Java 17 and Maven; jars fetched once into ~/.cache/nbo).
# KAFKA_NODES=3 starts three nodes with replication factor 3. `make test` runs on it while it runs.
kafka: $(STAMP)
	$(BIN)/python -m local_kafka.cluster start

kafka-stop: $(STAMP)
	$(BIN)/python -m local_kafka.cluster stop

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bakeoff: $(STAMP)
	$(BIN)/python -m benchmarks.bakeoff

learnability: $(STAMP)
	$(BIN)/python -m benchmarks.learnability

# Control groups: does the impact report's lift interval cover the simulation's lift?
impact: $(STAMP)
	$(BIN)/python -m benchmarks.impact

soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak

# The steady loop at 100 events/s for an hour on the embedded broker: flat CPU and memory?
broker-soak: $(STAMP)
	$(BIN)/python -m benchmarks.broker_soak

# SIGKILLs of every μ-product in a running loop: on Kafka (exactly-once), then embedded.
chaos: $(STAMP)
	$(BIN)/python -m benchmarks.chaos

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	if test -x $(BIN)/python; then $(BIN)/python -m local_kafka.cluster stop; fi
	rm -rf $(VENV) .nbo state .kafka .pytest_cache .mypy_cache .ruff_cache
