"""``REPO/.lookupvit-package.json``: what ``lookupvit package`` wrote into a model repository.

docs/security.md, "--force and the files that are yours": the record lists every file the tool wrote
(path relative to the repository -> sha256). A file is the tool's own, and may be replaced, only
when it is listed and its bytes still hash to the record; anything else in the folder is the user's.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from .types import STRICT, Sha256, Text

RECORD_NAME = ".lookupvit-package.json"


class RepositoryRecord(BaseModel):
    model_config = STRICT
    kind: Literal["lookupvit-package-repository"]
    files: dict[Text, Sha256] = {}
