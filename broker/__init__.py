"""cmq-broker: a local stand-in for Tencent Cloud CMQ and the Batch event notifications."""

__version__ = "0.1.0"
