"""The local test stack: a real kube-apiserver and every backend, on 127.0.0.1.

Used by ``make testbed-up``/``make dev`` and by the pytest session fixtures. It lives at
the repository root, beside ``operator/``, so that it is not part of the installed
``agentcred`` package: the wheel and the operator image carry no test stack. The
operator never imports it (an import-linter contract says so).
"""
