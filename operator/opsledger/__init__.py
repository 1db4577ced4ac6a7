"""OpsLedger: IT service and operations management native to Kubernetes."""

__version__ = "0.1.0"
