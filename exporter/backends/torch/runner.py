"""A Polygraphy runner over a PyTorch module, on CPU or CUDA."""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np
import torch
from polygraphy.backend.base import BaseRunner
from polygraphy.common import TensorMetadata
from torch import nn


class TorchRunner(BaseRunner):
    """Runs ``module`` on ``device`` (default: CUDA when available, else CPU).

    ``input_shape`` is one sample's shape; the batch dimension is dynamic. Outputs are named by
    ``output_names`` in the order the module returns them (a tensor or a tuple of tensors).
    """

    def __init__(
        self,
        module: nn.Module,
        input_shape: tuple[int, ...],
        output_names: list[str],
        input_name: str = "images",
        device: str | None = None,
        name: str | None = None,
    ):
        super().__init__(name=name, prefix="torch-runner")
        self._module = module
        self._input_shape = tuple(input_shape)
        self._input_name = input_name
        self.output_names = list(output_names)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def activate_impl(self) -> None:
        self.module = self._module.to(self.device).eval()

    def get_input_metadata_impl(self) -> TensorMetadata:
        return TensorMetadata().add(self._input_name, np.float32, (None, *self._input_shape))

    def infer_impl(self, feed_dict: dict[str, np.ndarray]) -> OrderedDict[str, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(feed_dict[self._input_name], dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = self.module(x)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            self.inference_time = time.perf_counter() - start
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return OrderedDict((n, o.float().cpu().numpy()) for n, o in zip(self.output_names, outs))

    def deactivate_impl(self) -> None:
        del self.module
