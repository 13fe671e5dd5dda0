"""What a causal LM's report says about generation: per variant, the time to the first token and decode
tokens per second with the KV cache and rerunning the prefix (the benchmark's `generation`), beside
its size and test perplexity, and what the bundle gains over the PyTorch teacher."""

from __future__ import annotations

from kdpipe.variants import bundle_label


def generation_summary(gen: dict | None, rows: list[dict], bundle: str | None) -> dict | None:
    """report.json's `generation`: the benchmark's settings and one row per model, cached and not."""
    if not gen:
        return None
    by_key = {(r["variant"], r["format"]): r for r in rows}
    models = {}
    for g in gen["results"]:
        key = (g["variant"], g["format"])
        m = models.setdefault(key, {"variant": g["variant"], "format": g["format"], "runtime": g["runtime"]})
        side = "cached" if g["cache"] else "prefix_rerun"
        m[side] = {k: g[k] for k in ("first_token_ms", "decode_tokens_per_s")}
        row = by_key.get(key)
        if row:
            m.update(size_bytes=row["size_bytes"], test=row["metric"]["value"])
    torch_teacher = models.get(("teacher", "torch"), {}).get("cached", {}).get("decode_tokens_per_s")
    out = []
    for m in models.values():
        c, p = m.get("cached", {}), m.get("prefix_rerun", {})
        if c.get("decode_tokens_per_s") and p.get("decode_tokens_per_s"):
            m["cache_speedup"] = round(c["decode_tokens_per_s"] / p["decode_tokens_per_s"], 3)
        if torch_teacher and c.get("decode_tokens_per_s"):
            m["vs_torch_teacher"] = round(c["decode_tokens_per_s"] / torch_teacher, 3)
        label = bundle_label({"variant": m["variant"], "format": m["format"]}) if m["format"] != "torch" else None
        m["bundle"] = bool(bundle) and label is not None and bundle in (m["variant"], label)
        out.append(m)
    return {k: gen[k] for k in ("prompt_tokens", "new_tokens", "batch", "threads", "rounds")} | {"models": out}


def generation_table(report: dict) -> tuple[list[str], list[list[str]]] | None:
    g = report.get("generation")
    if not g:
        return None
    head = ["variant", "format", "size (KB)", f"test {report['metric']['name']}", "first token (ms)",
            "decode tok/s (KV cache)", "decode tok/s (prefix rerun)", "cache speed-up", "vs PyTorch teacher"]
    body = []
    for m in g["models"]:
        c, p = m.get("cached", {}), m.get("prefix_rerun", {})
        name = (
            m["variant"] + (" (bundle)" if m.get("bundle") else "") + (" [PyTorch]" if m["format"] == "torch" else "")
        )
        body.append([name, m["format"], f"{m['size_bytes'] / 1024:.1f}" if m.get("size_bytes") else "-",
                     f"{m['test']:.2f}" if m.get("test") is not None else "-",
                     _num(c.get("first_token_ms"), ".2f"), _num(c.get("decode_tokens_per_s"), ".0f"),
                     _num(p.get("decode_tokens_per_s"), ".0f"), _num(m.get("cache_speedup"), ".2f", "x"),
                     _num(m.get("vs_torch_teacher"), ".2f", "x")])
    return head, body


def generation_finding(report: dict) -> str | None:
    g = report.get("generation")
    if not g:
        return None
    shipped = next((m for m in g["models"] if m.get("bundle")), None)
    teacher = next((m for m in g["models"] if m["format"] == "torch"), None)
    if not shipped or "cached" not in shipped:
        return None
    c = shipped["cached"]
    line = (f"Generation (batch 1, 1 thread, a {g['prompt_tokens']}-token prompt, {g['new_tokens']} new tokens): the "
            f"bundle ({shipped['variant']}) decodes {c['decode_tokens_per_s']:.0f} tokens/s with its KV cache")
    if shipped.get("cache_speedup"):
        line += f", {shipped['cache_speedup']:.1f}x the same graph rerunning the prefix"
    if teacher and teacher.get("cached") and shipped.get("vs_torch_teacher"):
        line += (f", {shipped['vs_torch_teacher']:.1f}x the PyTorch teacher with its own cache "
                 f"({teacher['cached']['decode_tokens_per_s']:.0f} tokens/s)")
    return line + f"; its first token comes {c['first_token_ms']:.1f} ms after the prompt."


def _num(v, fmt: str, suffix: str = "") -> str:
    return "-" if v is None else f"{v:{fmt}}{suffix}"
