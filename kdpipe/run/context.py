"""What a stage gets: the config, its own output folder, and read access to upstream results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kdpipe.config.schema import Config
from kdpipe.errors import RunFolderError
from kdpipe.run.store import RunStore
from kdpipe.variants import VariantRow, bundle_label


@dataclass
class StageContext:
    cfg: Config
    store: RunStore
    out: Path  # the stage's staging folder; moved to <run>/<stage>/ when the stage succeeds
    stage: str
    quiet: bool = False
    resume_key: str = ""  # fingerprint + upstream run ids: which training checkpoints belong to this run
    _splits: object = field(default=None, repr=False)
    _reference: tuple | None = field(default=None, repr=False)

    @property
    def is_main(self) -> bool:
        """False on the extra processes of a torchrun launch: they train, rank 0 evaluates and records."""
        from kdpipe import distributed

        return distributed.is_main()

    @property
    def task(self):
        from kdpipe.tasks import task_for

        return task_for(self.cfg)

    @property
    def splits(self):
        """The task's data (train/val/test and what the bundle needs), loaded once per process."""
        if self._splits is None:
            from kdpipe.tasks import load_data

            self._splits = load_data(self.cfg)
        return self._splits

    def checkpoint(self, role: str):
        """Where the training of `role` (teacher, student, ...) keeps its resume checkpoint."""
        from kdpipe.training.resume import TrainCheckpoint

        return TrainCheckpoint(self.store.checkpoint_dir(self.stage) / f"{role}.pt", self.resume_key,
                               self.cfg.checkpoint_every)

    def upstream(self, stage: str) -> dict:
        """The recorded outputs of an earlier stage (through the manifest, never its code)."""
        entry = self.store.entry(stage)
        if entry is None:
            raise RunFolderError(f"stage {self.stage!r} needs the results of {stage!r}, which are not in "
                                 f"{self.store.root}")
        return entry["outputs"]

    def upstream_row(self, stage: str, variant: str) -> VariantRow:
        """The row an earlier stage recorded for one of its variants (the teacher: distill's)."""
        return next(r for r in self.upstream(stage)["variants"] if r["variant"] == variant)

    def teacher_reference(self):
        """The teacher's top-1 predictions on the test split (written by distill), or None."""
        import numpy as np

        if self._reference is None:  # read once per stage: quantize scores every variant against it
            rel = self.upstream("distill").get("teacher_reference")
            self._reference = (np.load(self.file(rel)),) if rel else (None,)
        return self._reference[0]

    def record_evidence(self, rows: list[VariantRow]) -> list[VariantRow]:
        """Writes each row's per-sample evidence (validation and test) to <stage>/evidence/<label>.npz,
        which paired comparisons read (export's bundle choice, the report), and names it in the row."""
        from kdpipe.evaluation import evidence

        for row in rows:
            samples = row.pop("_samples", None)
            if samples is not None:
                path = self.out / "evidence" / f"{bundle_label(row)}.npz"
                evidence.save(path, samples["val"], samples["test"])
                row["evidence"] = self.rel(path)
        return rows

    def evidence(self, row: VariantRow) -> dict | None:
        """A row's per-sample evidence ({"val": Samples, "test": Samples}), or None for a row recorded
        without it (by a kdpipe before evidence was kept)."""
        from kdpipe.evaluation import evidence

        return evidence.load(self.file(row["evidence"])) if row.get("evidence") else None

    def has(self, stage: str) -> bool:
        entry = self.store.entry(stage)
        return entry is not None and not entry["outputs"].get("skipped")

    def file(self, rel: str) -> Path:
        """An upstream file, by the run-folder-relative path its stage recorded."""
        return self.store.path(rel)

    def rel(self, path: Path) -> str:
        """How downstream stages will find a file this stage writes (after the staging folder moves)."""
        return f"{self.stage}/{path.relative_to(self.out)}"
