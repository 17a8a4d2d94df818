"""The embedded dev stack behind `mnemo up / down / status`."""

# The worker prints this once it polls; `mnemo up` waits for it in the worker's log.
WORKER_READY_MARKER = "mnemo worker ready"
