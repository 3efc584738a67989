"""Building TensorRT engines per GPU profile (docs/architecture.md, The stages and The backend axis).

- :mod:`.plan`: what an ONNX graph declares, the build plan handed to Polygraphy, cache keys and the
  output layout; pure Python, no TensorRT.
- :mod:`.build`: the cached, atomic `lookupvit build`.
- :mod:`.child`: the build in a child process (crash, timeout and memory limit reported as such).
- :mod:`.trt`: the build itself, through Polygraphy.

Running an engine, what this machine offers (flavour, GPU, build target), the plugin library and
the sidecar format are the TensorRT backend's (:mod:`exporter.backends.tensorrt`), which this package
uses and which never imports it.
"""
