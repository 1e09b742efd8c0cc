"""xvbd: a hosted IVR / virtual PBX server for Asterisk, on Twisted."""

__version__ = "0.1.0"
