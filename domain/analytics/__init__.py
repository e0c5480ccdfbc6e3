"""Pure analytics over plain numpy arrays, one module per topic; nothing is re-exported here.

Everything in the package is pure: times are float seconds since the epoch (UTC), values
are the stored units of `domain.quantity`, and nothing reads a clock or a database.
That keeps each rule (what counts as an emptying, when a gateway is offline, when a
parking spot really changed) testable on a handful of numbers, and lets storage
choose how much history to hand over.
"""
