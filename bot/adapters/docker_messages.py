"""User-facing sentences for Docker failures (helpers of ``bot.adapters.docker``).

Docker's own explanation always travels in ``ContainerStartError.detail``; these turn
the common ones into a sentence that says what to do.
"""

from __future__ import annotations


def start_failure_message(explanation: str, *, lease_id: int, port: int, bind_address: str) -> str:
    text = explanation.lower()
    if "could not select device driver" in text:
        return (
            "This host cannot give containers a GPU: Docker has no NVIDIA device driver. "
            "Install the NVIDIA Container Toolkit and restart Docker (an administrator's job)."
        )
    if port_taken(text):
        return f"Port {port} on {bind_address} is already in use; Jupyter could not start."
    if "cannot assign requested address" in text:
        return (
            f"The address {bind_address} (GPUBOT_BIND_ADDRESS) is not an address of this host, "
            "so the Jupyter port could not be published."
        )
    if "nvidia" in text or "nvml" in text or "cuda" in text:
        return (
            "The NVIDIA container runtime refused to attach the GPU to the container; "
            "the GPU may be lost or the driver broken. An administrator should check `nvidia-smi`."
        )
    if "no such file or directory" in text and "exec" in text:
        return "The Jupyter image has no usable start command; rebuild it from image/."
    return f"Docker could not start the Jupyter container for lease {lease_id}."


def create_failure_message(explanation: str, *, lease_id: int, image: str) -> str:
    text = explanation.lower()
    if "conflict" in text and "is already in use" in text:
        return f"Another start of lease {lease_id} is in progress; try again in a moment."
    if "storage-opt" in text or "storage opt" in text:
        return ("This host's Docker storage driver cannot bound a container's writable layer "
                "(GPUBOT_ROOTFS_SIZE); an administrator must unset it or move Docker's data "
                "root to xfs with pquota (see `gpubot doctor`).")
    if "no command specified" in text:
        return f"The image {image} has no start command; it is not a gpubot Jupyter image."
    return f"Docker could not create the Jupyter container for lease {lease_id}."


def port_taken(explanation: str) -> bool:
    """Docker could not publish the port: something else listens on it."""
    text = explanation.lower()
    return "port is already allocated" in text or "address already in use" in text
