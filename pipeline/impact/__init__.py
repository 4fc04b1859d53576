"""The impact report: what the model earns over the control group's baselines."""
