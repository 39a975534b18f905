"""gpubot's benchmarks: ``python -m bench [--quick] [--only NAME]``.

Figures (each as median and p95/p99 over repeated runs in one process run), written to
docs/benchmarks.md with the machine they ran on:

1. ``claim``: ``/gpu claim`` → access DM through the real ``gpubot serve`` process and
   the Slack stand-in with real Docker, next to the floor (plain create + start of the
   same image until Jupyter's /login answers 200).
2. ``ack``: Socket Mode ack latency of slash commands against the real process.
3. ``concurrency``: 200 claims at once against 8 GPUs on PostgreSQL.
4. ``ticks``: expire/remind/reconcile ticks with 10,000 leases, 1% due; SQL statements
   per tick.
5. ``memory``: RSS of the served process idle and after the runs.
"""
