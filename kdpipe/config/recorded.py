"""What a stage records of the config (and fingerprints): the sections it reads, less keys added later
at the value that behaves as before they existed."""

from __future__ import annotations

from kdpipe.config.schema import Config

# Keys added after runs were recorded, with the value that behaves as before they existed: left out of
# a stage's recorded config (and fingerprint) at that value, so adding them does not rerun old runs.
ADDED_LATER = {
    ("teacher", "labels"): "kept",
    ("prune", "hidden"): None,
    ("prune", "ffn"): None,
    ("prune", "layers"): 0,
    ("data", "extra_texts"): None,
    ("data", "other_source"): None,
    ("distill", "freeze_embeddings"): False,
    ("data", "extra_texts_max"): None,
    ("export", "license"): None,
    ("quantize", "int4_block_size"): 32,
    ("quantize", "int4_accuracy_level"): 4,
    ("quantize", "int4_embeddings"): True,
    ("benchmark", "prompt_tokens"): 64,
    ("benchmark", "new_tokens"): 128,
    ("data", "drop_unlabelled"): False, ("export", "budget"): None, ("distill", "patience"): 3,
    ("distill", "max_epochs"): 40,
    ("distill", "max_minutes"): None,
}


def section_dict(cfg: Config, names: tuple[str, ...]) -> dict:
    full = cfg.model_dump(mode="json")
    for (section, key), neutral in ADDED_LATER.items():
        if section in full and full[section].get(key) == neutral:
            del full[section][key]
    out = {}
    for n in names:  # a section ("benchmark") or one of its settings ("benchmark.threads")
        section, _, key = n.partition(".")
        out[n] = full[section][key] if key else full[section]
    return out
