"""``kubectl agentcred``: the kubectl plugin (console script ``kubectl-agentcred``)."""
