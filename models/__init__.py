"""Online models, policies and the model store used by the Next Best Offer μ-product."""
