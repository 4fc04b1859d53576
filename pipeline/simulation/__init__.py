"""Simulated customers and channels, and the closed loops that drive nbo with them: `world.py`
(the customers, their hidden preferences, the channel that answers), `demo.py` (`nbo demo`) and
`steady_loop.py` (a steady event rate, supervised μ-products, crashes on purpose)."""
