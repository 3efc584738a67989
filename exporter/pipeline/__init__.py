"""The pipeline core (docs/architecture.md, The unit of work and the one stage chain).

- :mod:`.unit`: the unit of work (model, grid, precision) with its stage ids, folder and labels;
- :mod:`.manifest`: ``DIR/stages.json``, the one cache: which stage ran on which inputs (content
  hashes), so a stage whose inputs did not change is skipped;
- :mod:`.artefacts`: the one stage chain, export -> optimize -> precision -> build, making (or finding)
  each file of a cell in a folder's layout.

`run`, `compare`, `profile` and the benchmarks obtain every graph and engine from here.
"""

from .artefacts import Artefacts, ChainSettings
from .manifest import Manifest, StageError, StageOutcome, error_text
from .unit import Unit

__all__ = ["Artefacts", "ChainSettings", "Manifest", "StageError", "StageOutcome", "Unit", "error_text"]
