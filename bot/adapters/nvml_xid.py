"""Critical XID events from NVML: a GPU that reported one is not handed out again.

The inventory registers each GPU for ``nvmlEventTypeXidCriticalError`` on one event set.
NVML queues the events for that set, so ``poll()`` drains them with a 0 ms wait, one call
when nothing happened, from inside every ``list_gpus()``: a GPU is marked before the
next claim looks at it, and no thread is needed.

Application XIDs (13, 31, 43, 45, 68, 109: a user's own program faulted; the GPU is
fine) are logged and otherwise ignored, as NVIDIA's Kubernetes device plugin does. Any
other XID (48 double-bit ECC, 63/64 row remapping, 79 fallen off the bus, 94/95 ECC,
119/120 GSP, ...) marks the GPU unhealthy until gpubot restarts: the admin resets or
checks the card, then restarts the bot. A GPU or driver without XID events is listed as
usual; health then rests on ECC counters, remapped rows and NVML's own errors.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

APPLICATION_XIDS = frozenset({13, 31, 43, 45, 68, 109})
_MAX_EVENTS_PER_POLL = 1000  # a storm of events must not stall a listing


class XidWatch:
    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        self._set: Any = None
        self._reasons: dict[str, str] = {}  # GPU UUID -> why it is unhealthy
        self.registered: set[str] = set()  # GPUs whose critical XIDs NVML sends us
        try:
            self._set = nvml.nvmlEventSetCreate()
        except nvml.NVMLError as exc:
            log.warning("XID events are unavailable on this host (%s); GPU health rests on "
                        "ECC and remapped-row counters", exc)

    def register(self, uuid: str, handle: Any) -> None:
        """Ask NVML for this GPU's critical XIDs (once per GPU)."""
        n = self._nvml
        if self._set is None:
            return
        try:
            n.nvmlDeviceRegisterEvents(handle, n.nvmlEventTypeXidCriticalError, self._set)
        except n.NVMLError as exc:
            log.info("no XID events for %s: %s", uuid, exc)
            return
        self.registered.add(uuid)

    def poll(self) -> None:
        """Take every queued event without waiting."""
        n = self._nvml
        if self._set is None:
            return
        for _ in range(_MAX_EVENTS_PER_POLL):
            try:
                event = n.nvmlEventSetWait_v2(self._set, 0)
            except n.NVMLError as exc:
                if exc.value != n.NVML_ERROR_TIMEOUT:
                    log.warning("reading XID events failed: %s", exc)
                return
            if event.eventType & n.nvmlEventTypeXidCriticalError:
                self._record(event)

    def reason(self, uuid: str) -> str | None:
        """Why this GPU is unhealthy by its XIDs, or None."""
        return self._reasons.get(uuid)

    def close(self) -> None:
        if self._set is not None:
            try:
                self._nvml.nvmlEventSetFree(self._set)
            except self._nvml.NVMLError as exc:
                log.warning("nvmlEventSetFree failed: %s", exc)
            self._set = None

    def _record(self, event: Any) -> None:
        n, xid = self._nvml, int(event.eventData)
        try:
            uuid = n.nvmlDeviceGetUUID(event.device)
        except n.NVMLError:
            uuid = "an unknown GPU"
        if xid in APPLICATION_XIDS:
            log.info("XID %d on %s: an application fault; the GPU stays in service", xid, uuid)
            return
        log.error("XID %d on %s: taken out of service until gpubot restarts", xid, uuid)
        self._reasons.setdefault(
            uuid, f"critical XID {xid} reported by the driver: check the GPU (nvidia-smi, "
            f"dmesg), reset it if needed, then restart gpubot")
