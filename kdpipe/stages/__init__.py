"""The stages, in pipeline order. Each module has NAME, REQUIRES, SECTIONS and run(ctx) -> outputs.

SECTIONS are the config keys a stage reads itself; what it gets from upstream stages is covered by
their run ids, so a changed `distill` section reruns distill and, through that, everything after it.
"""

from kdpipe.stages import benchmark, distill, export, prune, quantize, report

STAGES = {m.NAME: m for m in (distill, prune, quantize, export, benchmark, report)}
ORDER = list(STAGES)
