"""gpubot: lease a lab's GPUs as time-boxed, hardened Jupyter environments from Slack."""

__version__ = "0.1.0"
