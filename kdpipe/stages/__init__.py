"""The stages, in pipeline order. Each module has NAME, REQUIRES, SECTIONS and run(ctx) -> outputs.

SECTIONS are the config keys a stage reads itself ("benchmark" for a whole section, or
"benchmark.threads" for one setting); what it gets from upstream stages is covered by their run ids,
so a changed `distill` section reruns distill and, through that, everything after it.
tests/stages/test_stage_inputs.py checks that every setting a stage reads is declared.
"""

from kdpipe.stages import benchmark, distill, export, prune, quantize, report

STAGES = {m.NAME: m for m in (distill, prune, quantize, export, benchmark, report)}
ORDER = list(STAGES)

# Settings that change where or how often results are written, never what they are: any stage may read
# them without rerunning when they change.
READ_BY_ANY = ("output_dir", "checkpoint_every")
