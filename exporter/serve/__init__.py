"""From a finished run to a served model.

- :mod:`.measurements`: what a run folder measured, read back from ``summary.json`` (and the
  ``latency.json`` / ``accuracy.json`` files it points to) as typed candidates;
- :mod:`.pareto`: the Pareto front of (grid, precision) over latency and accuracy;
- :mod:`.pick`: the setting that meets a latency budget with the best accuracy, and why every other
  candidate lost (``lookupvit pick``);
- :mod:`.front_plot`: the front per batch for the run's report;
- :mod:`.triton`: a Triton Inference Server model repository (``lookupvit package --triton``), with
  :mod:`.pbtxt` (the model configuration and its text), :mod:`.preprocess` (normalisation folded
  into the graph) and :mod:`.readme` (the repository's README);
- :mod:`.schema`: Triton's own model-configuration protobuf, loaded from ``tritonclient``;
- :mod:`.live`: a real Triton server (PyTriton's bundled ``tritonserver``, run by
  :mod:`.pytriton_host` in its own environment) serving a packaged repository's ONNX Runtime models.
"""
