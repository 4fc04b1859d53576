"""Regenerate the example bandit log under data/example_log/ (seeded: the same files every time).

    python data/make_example_log.py

4,000 offers shown uniformly at random by some other system, with its own column names, plus
the items file and the mapping that tells `nbo replay` which column is which.
"""

from __future__ import annotations

import csv
from pathlib import Path

from models.synthetic import SyntheticBandit

OUT = Path(__file__).parent / "example_log"
ROWS = 4000
# their name -> ours: a log from another system, used without reshaping it
RENAMED = {
    "timestamp": "event_time",
    "customer_id": "user",
    "segment": "user_segment",
    "age": "user_age",
    "channel": "touchpoint",
    "event_type": "trigger",
    "offer_id": "item",
    "accepted": "converted",
    "propensity": "p_logging",
}
MAPPING = """\
# Which column of log.csv and items.csv holds what nbo needs (see `nbo replay --help`).
timestamp: event_time
offer_id: item
reward: converted
propensity: p_logging
context:
  segment: user_segment
  age: user_age
  channel: touchpoint
  event_type: trigger
  products_held: null
items:
  offer_id: item_id
  category: family
"""


def main() -> None:
    bandit = SyntheticBandit(seed=11)
    OUT.mkdir(exist_ok=True)
    with open(OUT / "log.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(RENAMED.values()))
        writer.writeheader()
        for row in bandit.log(ROWS, logging="uniform"):
            writer.writerow({RENAMED[name]: value for name, value in row.items()})
    with open(OUT / "items.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["item_id", "family"])
        writer.writeheader()
        for offer in bandit.offers:
            writer.writerow({"item_id": offer["offer_id"], "family": offer["category"]})
    (OUT / "mapping.yaml").write_text(MAPPING)
    best, uniform = bandit.true_value(bandit.best_policy), bandit.true_value(bandit.uniform_policy)
    print(f"wrote {OUT}: true acceptance of the best policy {best:.4f}, of uniform {uniform:.4f}")


if __name__ == "__main__":
    main()
