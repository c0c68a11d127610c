"""pytest configuration for the test suite."""

# the mutation check (tests/mutation/run.py) is a script run by hand, not part of the suite
collect_ignore = ["mutation"]
