"""The pipeline core (docs/architecture.md, The unit of work and the one stage chain).

- :mod:`.stages`: the eight stages, declared once: kind, what each takes and makes, where it runs
  (host or device), the module that implements it;
- :mod:`.unit`: the unit of work (model, grid, precision) with its stage ids, folder and labels;
- :mod:`.manifest`: ``DIR/stages.json``, the one cache: which stage ran on which inputs (content
  hashes), so a stage whose inputs did not change is skipped;
- :mod:`.steps`: the stages that make files, each run through a manifest (the chain's, or a standalone
  verb's one-stage chain in its output folder);
- :mod:`.artefacts`: the one stage chain, export -> optimize -> precision -> build, making (or finding)
  each file of a cell in a folder's layout.

`run`, `compare`, `profile` and the benchmarks obtain every graph and engine from here.
"""

from .artefacts import Artefacts, ChainSettings
from .manifest import Manifest, StageError, StageOutcome, error_text
from .stages import STAGES, StageKind, StageSpec, stage
from .unit import Unit

__all__ = ["STAGES", "Artefacts", "ChainSettings", "Manifest", "StageError", "StageKind", "StageOutcome", "StageSpec",
           "Unit", "error_text", "stage"]
