"""``make bench``: load the real operator on the local testbed and measure it.

The benchmark only uses the operator's public surface (its CRDs, the Secrets it writes,
its metrics endpoint, its process and its log), so it runs unchanged against any
version of the operator. See ``docs/performance.md`` for what each scenario measures.
"""
