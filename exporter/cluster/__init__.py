"""Runs of several deployment profiles on a Ray cluster (``lookupvit run --profile a,b --cluster ADDRESS``).

docs/architecture.md, Distribution. A TensorRT engine is valid only for the GPU it was built on, so
each profile's device stages (``DEVICE_STAGES`` of :mod:`exporter.pipeline.stages`: build, validate,
compare, profile) run on a node whose accelerator matches the profile's ``[cluster]`` table, while its
host stages (export, optimize, precision, check; and the build where a node builds the engines without
a GPU) run once per graph on any node. The unit scheduled is the
pipeline's own (:mod:`exporter.pipeline.unit`), made by the run's own stage chain
(:func:`exporter.run.prepare.prepare_graph`, :func:`exporter.run.job.run_job`).

- :mod:`.address`: ``--cluster`` forms and connecting (Ray is imported here, and only when asked);
- :mod:`.resources`: what a profile needs against what the alive nodes offer (fail fast);
- :mod:`.transport`: files by content hash, a per-node cache, relocating a run folder;
- :mod:`.tasks`: the two kinds of task (prepare a graph; run a profile's device part);
- :mod:`.progress`: the actor tasks report their progress to;
- :mod:`.scheduler`: the driver: plan, submit, collect, write back, cancel on Ctrl-C.

Nothing in this package is imported by a run without ``--cluster``.
"""
