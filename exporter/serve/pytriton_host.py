"""Serve the ONNX Runtime models of a packaged Triton repository through a real ``tritonserver``.

Runs as a script in its own virtual environment, next to ``nvidia-pytriton`` (whose wheel bundles
``tritonserver`` 2.x with the Python backend only, and pins numpy < 2 and protobuf < 7, which our
environment does not share); it imports nothing from ``exporter``::

    python pytriton_host.py --repo REPO --model NAME [--model NAME ...] --http-port P --grpc-port Q \
        --metrics-port R --workspace DIR

For each model it reads ``REPO/<model>/config.pbtxt`` with Triton's own ``ModelConfig`` message,
opens ``1/<default_model_filename>`` in an ONNX Runtime session with the config's
``intra_op_thread_count``, runs the config's warm-up batches, and binds it through PyTriton with the
config's inputs, outputs, ``max_batch_size`` and dynamic batcher (preferred batch sizes and queue
delay): requests go through tritonserver's HTTP front end and dynamic batcher to a Python-backend
stub, which hands each merged batch to this process (PyTriton's proxy). Only the ONNX Runtime
backend's part is played by PyTriton; the server, its request validation and batching are Triton's.

It prints ``READY <http port> <access token>`` on stdout once every model is loaded (the token opens
the APIs PyTriton restricts: statistics, model repository, shared memory), and stops the server on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import sys
import time
from pathlib import Path

import numpy as np


def _model_config_module():
    import tritonclient

    for root in tritonclient.__path__:
        path = Path(root) / "grpc" / "model_config_pb2.py"
        if path.is_file():
            spec = importlib.util.spec_from_file_location("host_model_config_pb2", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise SystemExit("tritonclient has no grpc/model_config_pb2.py")


_NUMPY = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_UINT8": np.uint8, "TYPE_INT8": np.int8,
          "TYPE_INT32": np.int32, "TYPE_INT64": np.int64, "TYPE_BOOL": np.bool_, "TYPE_FP64": np.float64}


def _load(repo: Path, name: str):
    from google.protobuf import text_format

    pb = _model_config_module()
    cfg = text_format.Parse((repo / name / "config.pbtxt").read_text(), pb.ModelConfig())
    if cfg.platform != "onnxruntime_onnx":
        raise SystemExit(f"{name}: platform {cfg.platform!r}; this host serves onnxruntime_onnx models only")
    dtype_name = pb.DataType.Name
    import onnxruntime as ort

    opts = ort.SessionOptions()
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    opts.intra_op_num_threads = int(params.get("intra_op_thread_count", "0"))
    session = ort.InferenceSession(str(repo / name / "1" / (cfg.default_model_filename or "model.onnx")), opts,
                                   providers=["CPUExecutionProvider"])
    inputs = [(t.name, _NUMPY[dtype_name(t.data_type)], tuple(t.dims)) for t in cfg.input]
    outputs = [(t.name, _NUMPY[dtype_name(t.data_type)], tuple(t.dims)) for t in cfg.output]
    rng = np.random.default_rng(0)
    for w in cfg.model_warmup:  # what the ONNX Runtime backend would run before serving
        feeds: dict[str, np.ndarray] = {k: rng.integers(0, 256, (w.batch_size, *v.dims)).astype(_NUMPY[dtype_name(v.data_type)])
                 for k, v in w.inputs.items()}
        session.run(None, feeds)
    return cfg, session, inputs, outputs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True, type=Path)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--grpc-port", type=int, required=True)
    ap.add_argument("--metrics-port", type=int, required=True)
    ap.add_argument("--workspace", type=Path, required=True)
    args = ap.parse_args()

    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    config = TritonConfig(http_address="127.0.0.1", http_port=args.http_port, grpc_address="127.0.0.1",
                          grpc_port=args.grpc_port, metrics_address="127.0.0.1", metrics_port=args.metrics_port,
                          exit_timeout_secs=5, allow_gpu_metrics=False)
    stop = {"now": False}

    def on_signal(signum, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    security = TritonSecurityConfig()  # statistics, repository and shared-memory APIs need its token
    with Triton(config=config, workspace=args.workspace, security_config=security) as triton:
        for name in args.model:
            cfg, session, inputs, outputs = _load(args.repo, name)
            out_names = [o[0] for o in outputs]

            def make(session=session, out_names=out_names):
                @batch
                def infer(**feeds):
                    results = session.run(out_names, feeds)
                    return dict(zip(out_names, results, strict=True))

                return infer

            db = cfg.dynamic_batching
            triton.bind(
                model_name=name, infer_func=make(),
                inputs=[Tensor(name=n, dtype=d, shape=s) for n, d, s in inputs],
                outputs=[Tensor(name=n, dtype=d, shape=s) for n, d, s in outputs],
                config=ModelConfig(max_batch_size=cfg.max_batch_size, batcher=DynamicBatcher(
                    preferred_batch_size=list(db.preferred_batch_size) or None,
                    max_queue_delay_microseconds=db.max_queue_delay_microseconds)),
                strict=True,
            )
        triton.run()
        print(f"READY {args.http_port} {security.access_token}", flush=True)
        while not stop["now"]:
            time.sleep(0.1)
    print("STOPPED", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
