"""Provisioning as code: `--config FILE` declares queues, topics, subscriptions and Batch compute
environments, created at start-up before the port opens.

`load_plan` reads and checks the TOML file before the data directory is touched (plan.py);
`apply_plan` brings the recovered state in line with it, through the engine and the simulator,
idempotently (apply.py). Every refusal is a ProvisionError naming the file, line and key.
"""

from .apply import apply_plan, provision
from .plan import Plan, ProvisionError, load_plan

__all__ = ["Plan", "ProvisionError", "apply_plan", "load_plan", "provision"]
