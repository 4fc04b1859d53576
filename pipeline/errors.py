"""One exception base class for everything nbo raises on purpose.

Messages name the stage, the record and what was wrong, so an operator can act on them
without reading the code.
"""


class NboError(Exception):
    """Base class of every error nbo raises deliberately."""

    exit_code = 1  # of the `nbo` command it stops


class BrokerError(NboError):
    """The Kafka broker could not be started, reached or used."""


class ConfigError(NboError):
    """Settings or input files are unusable as given."""


class LoadError(NboError):
    """A load was refused as a whole (for example `--strict` with rejected rows)."""


class UiNotReady(NboError):
    """The MLflow UI's server exited or its tracking API did not answer in time."""


class StreamStalled(NboError):
    """A μ-product had records waiting and made no progress for `NBO_STALL_TIMEOUT` seconds."""


class InstanceTaken(NboError):
    """Another live process already is this instance of a μ-product (same `NBO_INSTANCE_ID`).

    Its own exit code, so that a supervisor can be told not to restart on it (systemd's
    `RestartPreventExitStatus=3`): a restart would be refused again."""

    exit_code = 3


class InstanceFenced(InstanceTaken):
    """Kafka gave this instance's identity to a newer process: two processes on two hosts
    share one `NBO_INSTANCE_ID`."""
