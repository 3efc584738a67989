"""TensorRT engines per GPU profile (docs/architecture.md, The stages and The backend axis).

- :mod:`.profiles`: the ``profiles/*.toml`` deployment profiles, parsed and validated.
- :mod:`.plan`: what an ONNX graph declares, the build plan handed to Polygraphy, cache keys and the
  output layout; pure Python, no TensorRT.
- :mod:`.env`: which TensorRT flavour and which GPU this machine has.
- :mod:`.build`: the cached, atomic `lookupvit build`.
- :mod:`.trt`: the only module importing TensorRT (through Polygraphy): the build and ``trt_runner``.
"""
