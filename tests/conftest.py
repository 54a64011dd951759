import os

import matplotlib

matplotlib.use("Agg")

from hypothesis import HealthCheck, settings  # noqa: E402

# One profile for every property test: no deadline (shared, noisy machines), a fixed example budget.
settings.register_profile("samtheory", deadline=None, max_examples=40, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=400,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("SAMTHEORY_HYPOTHESIS_PROFILE", "samtheory"))


import pytest  # noqa: E402


@pytest.fixture
def cli_error(capsys):
    """Run ``samtheory ARGV`` expecting bad input: exit status 2 and exactly one line on stderr, no traceback.
    Returns that line."""
    from samtheory.cli import main

    def run(argv):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse errors exit from inside parse_args
            code = exit_.code
        err = capsys.readouterr().err.strip()
        assert code == 2
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        return err

    return run
