"""What the quantize stage makes under a config, decided once: the model it quantizes, its jobs, and
every variant name they can give (the quantize stage runs the jobs; export checks `export.bundle`
against the names before any training)."""

from __future__ import annotations

from kdpipe.errors import ConfigError
from kdpipe.variants import QUANTIZED_TEACHER, variant_name


def source(wanted: str, pruned: bool) -> str:
    """The torch model the quantize stage quantizes (`quantize.source`; `pruned`: whether the prune
    stage runs): the pruned student where pruning runs (auto)."""
    if wanted == "pruned" and not pruned:
        raise ConfigError("quantize.source: pruned, but the prune stage is disabled (prune.enabled: false)")
    if wanted == "auto":
        return "pruned" if pruned else "student"
    return wanted


def jobs(qc) -> list[tuple[str, str | None]]:
    """(kind, calibration) for each copy `quantize.variants` asks for; static once per calibration."""
    out: list[tuple[str, str | None]] = []
    for v in qc.variants:
        out += [("static", c) for c in qc.calibration] if v == "static" else [(v, None)]
    return out


def planned_variants(cfg) -> list[str]:
    """Every name the quantize stage may give a variant under this config: each job's, the fused fp32
    graph and its dynamic int8 (made where onnxruntime has fusions for the model), the accuracy-aware
    `-mixed` forms (made where int8 broke too much), the quantized teacher, the teacher's QAD copies and
    the no-KD student's int8 copy (made where KD did not pay on validation)."""
    qc = cfg.quantize
    if not qc.enabled:
        return []
    src = source(qc.source, cfg.prune.enabled)
    names = [variant_name(src, "fp32-fused")]
    for kind, calibration in jobs(qc):
        names.append(variant_name(src, kind, calibration))
        if kind in ("dynamic", "static") and qc.search:
            names.append(variant_name(src, kind, calibration, mixed=True))
        if kind == "dynamic":
            names.append(variant_name(src, "dynamic-fused"))
    if qc.teacher:
        names.append(QUANTIZED_TEACHER)
    if cfg.distill.baseline:  # made where KD did not pay on validation
        names.append(variant_name("baseline", "dynamic"))
    if qc.qad.teacher:
        names += [variant_name("teacher", kind) for kind, _ in jobs(qc) if kind.startswith("qad-")]
    return names
