"""LookupViT deployment toolchain: export, optimise, quantise, build and profile LookupViT models.

The package mirrors the pipeline (docs/architecture.md, The stages): ``models`` (the LookupViT family, its cost
model and weights), ``data`` (labelled datasets), ``evaluate`` (task accuracy), ``cli`` (the thin
``lookupvit`` command over the library).
"""

__version__ = "0.1.0"
