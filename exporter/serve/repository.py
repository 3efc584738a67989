"""Which files of a model repository are this tool's own: ``package -o REPO`` and ``--force``.

docs/security.md, "--force and the files that are yours". ``REPO/.lookupvit-package.json``
(:class:`exporter.schema.repository.RepositoryRecord`) lists every file ``package`` wrote, with its
sha256. The rules, all checked before anything is written:

- a missing or empty folder is the tool's to fill;
- an existing folder that holds files and no record is the user's: refused without ``--force``;
  with ``--force`` models are added next to the user's files, never over them;
- a model folder that exists is replaced only with ``--force``, and only when every file in it is one
  the record lists with the same sha256 (nothing of the user's inside, no symbolic link);
- ``README.md`` is rewritten only when it is absent or the record's own (unchanged since written);
- the repository folder, a model folder and the record are never followed through a symbolic link.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..io import sha256_file, write_json
from ..safe_paths import confined, is_plain_dir, is_plain_file, remove_tree, single_component
from ..schema.repository import RECORD_NAME, RepositoryRecord

README = "README.md"


@dataclass
class Repository:
    root: Path
    record: dict[str, str] = field(default_factory=dict)  # relative path -> sha256 of a file this tool wrote
    force: bool = False

    def _owned(self, rel: str) -> bool:
        p = self.root / rel
        return rel in self.record and is_plain_file(p) and sha256_file(p) == self.record[rel]

    def _foreign_in(self, name: str) -> str | None:
        """The first file (or link) in the model folder ``name`` that is not this tool's own, else None."""
        folder = self.root / name
        for here, dirs, files in os.walk(folder, followlinks=False):
            for d in dirs:
                if os.path.islink(Path(here) / d):
                    return str((Path(here) / d).relative_to(self.root))
            for f in files:
                rel = str((Path(here) / f).relative_to(self.root))
                if not self._owned(rel):
                    return rel
        return None

    def check_model(self, name: str) -> None:
        """Refuse, before anything is written, to put the model ``name`` where it would replace what is
        not this tool's (see the module docstring)."""
        single_component(name, "The Triton model name (--name)")
        final = self.root / name
        if not os.path.lexists(final):
            return
        if not self.force:
            raise UserError(f"{final} exists.", "Pass --force to replace it, or give another -o folder.")
        if os.path.islink(final) or not is_plain_dir(final):
            raise UserError(f"{final} is a symbolic link or not a folder: it was not written by `lookupvit package` and "
                            "--force leaves it alone.", "Move it away, or choose another --name or -o folder.")
        foreign = self._foreign_in(name)
        if foreign is not None:
            raise UserError(f"{self.root / foreign} was not written by `lookupvit package` (or was changed since), so "
                            f"--force does not replace {final}: only the tool's own previous outputs are replaced.",
                            "Move your file out of that folder, or choose another --name or -o folder.")

    def check_readme(self) -> None:
        readme = self.root / README
        if os.path.lexists(readme) and not self._owned(README):
            raise UserError(f"{readme} was not written by `lookupvit package` (or was edited since): it is not replaced, "
                            "with or without --force.", "Move it away, or give -o a folder of its own for the repository.")

    def replace_model(self, name: str) -> None:
        """Remove the previous model folder ``name`` (checked by :meth:`check_model`)."""
        if os.path.lexists(self.root / name):
            remove_tree(self.root, name, "The Triton model name (--name)")
        self.record = {k: v for k, v in self.record.items() if Path(k).parts[0] != name}

    def add(self, rel_paths: list[str]) -> None:
        for rel in rel_paths:
            self.record[rel] = sha256_file(self.root / rel)

    def add_folder(self, name: str) -> None:
        files = []
        for here, _dirs, names in os.walk(self.root / name, followlinks=False):
            files += [str((Path(here) / f).relative_to(self.root)) for f in names if is_plain_file(Path(here) / f)]
        self.add(files)

    def save(self) -> None:
        write_json(self.root / RECORD_NAME, {"kind": "lookupvit-package-repository", "files": dict(sorted(self.record.items()))})


def open_repository(out_dir: Path, force: bool) -> Repository:
    """The repository at ``out_dir`` and its record; refuses a folder that is not the tool's to write
    into (module docstring) before anything is written."""
    from ..schema import load_document

    if os.path.islink(out_dir) or (out_dir.exists() and not out_dir.is_dir()):
        raise UserError(f"{out_dir} is a symbolic link or not a folder.", "Give -o a plain folder (it is created if needed).")
    repo = Repository(out_dir, {}, force)
    if not out_dir.exists():
        return repo
    record_path = out_dir / RECORD_NAME
    if os.path.lexists(record_path):
        if not is_plain_file(record_path):
            raise UserError(f"{record_path} is not a regular file.", "Remove it, or give -o another folder.")
        doc = load_document(RepositoryRecord, record_path)
        for rel in doc.files:
            confined(out_dir, rel, record_path, "files")
        repo.record = dict(doc.files)
    elif any(True for _ in out_dir.iterdir()) and not force:
        raise UserError(f"{out_dir} exists and holds files that `lookupvit package` did not write.",
                        "Give -o a new or empty folder, or pass --force to add the models next to your files (they are "
                        "never replaced).")
    return repo
