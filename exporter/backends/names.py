"""The backends' names: one spelling users see, the short keys the code uses, aliases accepted.

The frameworks that run a model (docs/architecture.md, The backend axis) are named the way their
projects name themselves, in verbs and in profiles alike: ``torch``, ``onnxruntime``, ``openvino``,
``tensorrt``. The short spellings (``ort``, ``trt``, ``ov``, ``pytorch``) are accepted everywhere
as aliases. Inside the code, and in files a run writes (``latency.json`` cells), a backend is its
short key (``torch``, ``ort``, ``openvino``, ``trt``).
"""

from __future__ import annotations

from ..errors import UserError, closest

CANONICAL = {"torch": "torch", "ort": "onnxruntime", "openvino": "openvino", "trt": "tensorrt"}  # key -> name
ALIASES = {**{name: key for key, name in CANONICAL.items()}, "ort": "ort", "trt": "trt", "ov": "openvino",
           "pytorch": "torch", "tensorrt-rtx": "trt"}


def backend_key(name: str, allowed: tuple[str, ...] | None = None, option: str = "--backend") -> str:
    """The code's key for a backend named ``name`` (a name or an alias); :class:`UserError` naming
    the choices (the canonical names) when it is unknown or not among ``allowed`` (keys)."""
    key = ALIASES.get(name.strip().lower())
    choices = [CANONICAL[k] for k in (allowed or tuple(CANONICAL))]
    if key is None or (allowed is not None and key not in allowed):
        near = closest(name, list(ALIASES))
        raise UserError(f"{option} {name!r} is not a backend this verb runs.",
                        f"Choose from {', '.join(choices)}" + (f" (did you mean {', '.join(near)}?)" if near else "") + ".")
    return key


def backend_name(key: str) -> str:
    """The name users see for a backend key (``ort`` -> ``onnxruntime``)."""
    return CANONICAL.get(key, key)
