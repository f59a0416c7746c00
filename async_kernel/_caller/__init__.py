"""The machinery behind [Caller][async_kernel.Caller]; private, one job per module.

`async_kernel.caller` is the public façade; it holds direct references to these parts:

- `lifecycle`: a caller's states (starting, running, stopping, stopped) and `CallerStoppedError`;
- `registry`: every caller by name and by thread, the registry lock, worker numbering, and what
  `Caller.get` does to find or create a caller;
- `scheduler`: the inbox of one caller, the drain that starts its calls in the loop thread, and
  the counters a snapshot reads;
- `engine`: what an event-loop backend offers the scheduler (a Protocol) and `engine_for`, with
  one engine per backend in `asyncio_engine` and `trio_engine` (like anyio's `_backends`);
- `workers`: the pool of idle `to_thread` workers of one caller;
- `function_queue`: the queues of `Caller.queue_call`, one per function, and their table;
- `waiting`: `as_completed` and `wait` over Pendings, which need no caller at all.
"""
