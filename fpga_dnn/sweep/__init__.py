"""Design-space sweeps on Ray: points that are pure functions of their recipe, run anywhere.

A sweep is a list of :class:`~fpga_dnn.sweep.runner.Task` s: a content-hash ``key`` (of what
produced the point: model, data, recipe, package versions), the import path of a function and
its keyword arguments (plain data). :func:`~fpga_dnn.sweep.runner.run_tasks` runs the ones the
:class:`~fpga_dnn.sweep.store.ResultStore` does not hold yet:

* ``workers=1`` (and no address): one after another in this process — tests, tiny runs;
* ``workers=N``: on a local Ray started (and stopped) by the command, N worker processes;
* ``ray_address="host:port"`` (or ``"auto"``): on an existing Ray cluster. Every node needs the
  project's environment (the same ``requirements/toolchain.lock``, ``pip install -e .``) and
  the store's folder at the same path (a shared file system).

Results live in the store, not in the driver: a re-run recomputes nothing that finished, an
interrupted sweep resumes, a worker that dies mid-point has its task retried by Ray on another
worker (``max_retries``), and a point is stored once (the first complete attempt wins; a later
one of the same key finds it and returns it).
"""

from .runner import Task, TaskFailure, run_tasks  # noqa: F401
from .store import ResultStore  # noqa: F401
