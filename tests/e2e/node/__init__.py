"""The suites that need the testbed node (a package so that the node and the in-cluster
operator live only as long as these tests: package-scoped fixtures in conftest.py)."""
