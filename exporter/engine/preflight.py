"""Preflight: can this machine run a deployment profile's backend? Asked before any heavy work.

``run``, ``profile``, ``compare --backend trt`` and ``build`` call :func:`preflight` first, so a
TensorRT profile on a machine without TensorRT, a CUDA GPU or the profile's GPU fails within
seconds, having written nothing, instead of exporting and converting gigabytes of graphs that
cannot be built here. The realistic alternative is named in the error: ``run --prepare-only``
exports, optimises and converts the graphs the profile will build (and checks them against the
TensorRT parser's rules), so that only the build and the measurements run on the target machine.

A TensorRT engine is specific to the GPU it is built for (TensorRT developer guide, "Engine
compatibility"): full TensorRT needs a GPU of the profile's compute capability here unless the profile
asks for hardware compatibility (:func:`exporter.backends.tensorrt.env.check_gpu_matches`); TensorRT-RTX compiles
ahead of time for the profile's compute capability, with or without a GPU, where its
``ComputeCapability`` list has it (:func:`exporter.backends.tensorrt.env.build_target`). A machine that can
build but has no GPU passes the preflight: the stages that run an engine (validation, timing) are
then reported as not run here.

An OpenVINO profile needs the ``openvino`` package (an optional extra): without it the run stops
here, before any export, naming the install command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import CannotRunHere

if TYPE_CHECKING:
    from ..profiles import Profile


def preflight(profile: Profile, verb: str) -> None:
    """Raise :class:`CannotRunHere` (exit 2) when ``profile``'s backend cannot run here; else return."""
    if profile.backend == "openvino":
        from ..backends.openvino import openvino_missing

        missing = openvino_missing()
        if missing:
            raise CannotRunHere(
                f"Profile {profile.name} runs on OpenVINO ({verb}): {missing}.",
                "pip install -e '.[openvino]' (or pip install openvino), or run the ONNX Runtime profile: --profile cpu.",
            )
        return
    if not profile.is_tensorrt:
        return
    from ..backends.tensorrt.env import build_target

    try:
        build_target(profile, f"run profile {profile.name} ({verb})")
    except CannotRunHere as e:
        raise CannotRunHere(
            e.message,
            f"{e.hint} To prepare the work here and build on a machine with {profile.gpu or 'the profile GPU'}: "
            f"lookupvit run --profile {profile.name} --prepare-only -o DIR (exports, optimises and converts the "
            "graphs the profile builds, and checks them for TensorRT).",
        ) from None
