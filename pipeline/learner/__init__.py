"""The learner μ-product: one model learned from every ranker's feedback (see app.py)."""
