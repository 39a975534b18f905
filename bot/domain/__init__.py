"""Pure domain: leases, durations, policy and GPU choice. Imports no I/O library."""
