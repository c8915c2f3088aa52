"""The local test stack: a real kube-apiserver and every backend, on 127.0.0.1.

Used by ``make testbed-up``/``make dev`` and by the pytest session fixtures. The
operator itself never imports this package (an import-linter contract says so).
"""
