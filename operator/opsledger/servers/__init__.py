"""The aiohttp apps every replica serves: the admission webhook and the Alertmanager receiver."""
