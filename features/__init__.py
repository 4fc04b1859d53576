"""Pure feature functions: customer state, offer and context in, a new feature dict out."""
