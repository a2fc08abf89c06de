"""Moving a collection to a new model without downtime (`slimvec migrate`): query adapters (`adapters`), the
on-disk record (`state`), fitting, re-embedding and the switch (`runner`), search during it (`merged`).

Imports nothing heavy: `slimvec.migrate.runner.migrate(path, to)` is the one call.
"""
