"""Typed views of the AgentCredential and AgentTask resources: parsing only, no I/O."""
