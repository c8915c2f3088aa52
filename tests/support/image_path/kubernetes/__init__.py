"""Put first on the test operators' PYTHONPATH (support/operator.py): the operator's image
has no synchronous ``kubernetes`` client (the tests' venv has it for the tests), and Kopf
imports it at start when it can (``kopf._cogs.helpers.thirdparty``), ~0.3-0.6 s per
operator start under coverage. Without it here, a test operator starts as the image's."""

raise ImportError("the synchronous kubernetes client is not part of the operator's image")
