import os

import matplotlib

matplotlib.use("Agg")

from hypothesis import HealthCheck, settings  # noqa: E402

# One profile for every property test: no deadline (shared, noisy machines), a fixed example budget.
settings.register_profile("samtheory", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=400,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("SAMTHEORY_HYPOTHESIS_PROFILE", "samtheory"))
