"""The README.md of a packaged Triton model repository: how to serve it and what it expects.

Facts it relies on: ``tritonserver --model-repository=PATH`` serves every model folder under PATH
(Triton docs, "Model Repository"); custom TensorRT layers built as a shared library are loaded with
``LD_PRELOAD`` or the TensorRT backend's ``--backend-config=tensorrt,plugins=...`` (Triton docs,
"Custom Operations"; TensorRT backend README); TensorRT's Python plugins with an ahead-of-time
implementation (``tensorrt.plugin.aot_impl``) put their compiled kernels into the engine, which then
runs without Python or a plugin library (TensorRT developer guide, "Python plugins").
"""

from __future__ import annotations

from typing import Any

from ..io import atomic_path

PREPROCESSING_WHY = (
    "The normalisation `(x / 255 - mean) / std` is folded into each graph (four element-wise ops in front of "
    "the model), so clients send raw `uint8` images. The alternative, a Triton ensemble of a preprocessing model "
    "and this one, was not chosen: the images arrive at the model's size already (there is no decoding or "
    "resizing that would need a Python or DALI model), so an ensemble would add a second model, a second "
    "instance group to size and a second trip through the scheduler for four arithmetic ops; float32 requests "
    "would also carry four times the bytes of uint8 ones. Folded, the mean and std travel inside the model file "
    "and cannot drift from the values the model was trained with."
)


def write_readme(result: Any, profiles: list[Any]) -> None:
    """Write ``result.readme`` for the :class:`~exporter.serve.triton.PackageResult` ``result``."""
    repo = result.repo
    first = result.models[0]
    prof = profiles[0]
    lines = [f"# Triton model repository: {', '.join(m.name for m in result.models)}", "",
             f"Written by `lookupvit package` for profile{'s' if len(profiles) > 1 else ''} "
             f"{', '.join(p.name for p in profiles)} ({prof.backend}{', ' + prof.gpu if prof.gpu else ''}).", "",
             f"Choice: {result.choice}. Default model: `{result.default_model}`."]
    if result.notes:
        lines += ["", "## WARNING: settings that did not pass", ""] + [f"- **{n}.**" for n in result.notes] + [
            "", "Their accuracy verdict (the run's `compare`) is not PASSED: the top-1 above is not a claim that the "
                "model works. Do not serve them without checking why (see the run's report)."]
    if len(result.models) > 1:
        lines += ["", "Each compressed grid is its own model (a LookupViT's grid is fixed when it is exported): a client "
                      "chooses its latency budget per request through the model name; `lookupvit pick RUN_DIR "
                      "--latency-ms X` says which grid meets a budget."]
    lines += ["", "## Models", "", "| model | platform | grid | precision | input | output | max batch | preferred batches | queue delay |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m in result.models:
        c = m.config
        i, o = c.inputs[0], c.outputs[0]
        lines.append(f"| `{m.name}` | {m.platform} | {m.grid or '-'} | {m.precision} | `{i.name}` {i.data_type} "
                     f"[-1, {', '.join(map(str, i.dims))}] | `{o.name}` {o.data_type} [-1, {', '.join(map(str, o.dims))}] "
                     f"| {c.max_batch_size} | {', '.join(map(str, c.preferred_batch_sizes)) or 'none'} | {c.max_queue_delay_us} us |")
    lines += ["", "## Preprocessing", ""]
    if first.input_mode == "raw":
        lines += [PREPROCESSING_WHY]
    else:
        lines += ["Packaged with `--input float`: clients send float32 images normalised as the model was trained "
                  "(`(x / 255 - mean) / std` per channel, the mean and std in the ONNX metadata `lookupvit.mean` / "
                  "`lookupvit.std`)."]
    lines += ["", "## Serving it", ""]
    if prof.is_tensorrt:
        lines += ["```bash", f"docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -v {repo.resolve()}:/models "
                  "nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository=/models", "```", "",
                  "Use a Triton release whose TensorRT is the version the engines were built with (Triton's release "
                  "notes name it), unless the profile builds version-compatible engines."]
        lines += ["", "### Engines", ""]
        for m in result.models:
            for e in m.engines:
                note = e.note.replace("{REPO}", str(repo))
                lines.append(f"- `{m.name}/1/{e.filename}` (compute capability {e.compute_capability}, profile "
                             f"{e.profile}): {'present' if e.built else 'MISSING'} — {note}")
        if not result.complete:
            lines += ["", "The configs are complete, but Triton will not load a model until the engine for the "
                          "server's GPU is in place: build it from `source/model.onnx` as written above."]
        if any(m.plugin_nodes for m in result.models):
            n = max(m.plugin_nodes for m in result.models)
            lines += ["", "### The LookupViT plugin", "",
                      f"The graph carries {n} LookupGather/LookupScatter nodes (`lookupvit` domain). `lookupvit build` "
                      "registers the plugin (`plugins.trt_plugin`, TensorRT's Python plugin API with an ahead-of-time "
                      "implementation) and TensorRT compiles its kernels into the engine, so `tritonserver` needs no "
                      "plugin library and no `LD_PRELOAD` for these engines; its TensorRT must be one that runs "
                      "ahead-of-time plugin kernels (the version the engine was built with). Building the engine needs "
                      "`pip install -e '.[tensorrt,plugins]'` on the GPU machine. Should an engine be built with a plugin "
                      "compiled into a shared library instead, start the server with "
                      "`--backend-config=tensorrt,plugins=/path/libplugin.so` (or `LD_PRELOAD=/path/libplugin.so`). "
                      "Not run here: no GPU was available to load such an engine in Triton."]
    else:
        lines += ["```bash", f"docker run --rm -p 8000:8000 -p 8001:8001 -v {repo.resolve()}:/models "
                  "nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository=/models", "```", "",
                  "or `tritonserver --model-repository " + str(repo.resolve()) + "` where Triton with its ONNX Runtime "
                  "backend is installed. The instance runs on the CPU with the profile's intra-op thread count."]
    i = first.config.inputs[0]
    shape = ", ".join(map(str, i.dims))
    dtype = "np.uint8" if i.data_type == "TYPE_UINT8" else "np.float32"
    lines += ["", "## A request", "", "```python", "import numpy as np", "import tritonclient.http as http", "",
              'client = http.InferenceServerClient("127.0.0.1:8000")',
              f"images = np.zeros((1, {shape}), dtype={dtype})  # a batch of images (N, C, H, W)" +
              (", 0..255" if dtype == "np.uint8" else ", normalised"),
              f'x = http.InferInput("{i.name}", images.shape, "{i.data_type.removeprefix("TYPE_")}")',
              "x.set_data_from_numpy(images)",
              f'logits = client.infer("{first.name}", [x]).as_numpy("{first.config.outputs[0].name}")', "```", ""]
    with atomic_path(result.readme) as tmp:
        tmp.write_text("\n".join(lines))
