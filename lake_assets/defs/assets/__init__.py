"""The lake's assets, one module per zone."""

import warnings

from dagster import BetaWarning

OWNERS = ["team:data-engineering"]

# `backfill_policy` is still marked beta in Dagster 1.13, yet it is the documented way to run a range
# of partitions as one run; the warning at import is nothing a user of this project can act on.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)
# Likewise `Output(data_version=...)`, the documented way to give a materialisation its data version.
warnings.filterwarnings("ignore", message="Parameter `data_version`", category=BetaWarning)
