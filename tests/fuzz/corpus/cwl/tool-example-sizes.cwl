#!/usr/bin/env -S xylem cwl
# Expressions in Python: Xylem's xylem:InlinePythonRequirement
# (docs/cwl.md, "Inline Python").
#   xylem cwl --outdir out sizes.cwl sizes-job.yml
cwlVersion: v1.2
class: CommandLineTool
doc: Lists files with their sizes in human units, and adds the sizes up.
$namespaces:
  xylem: https://xylem.dev/cwl#
requirements:
  xylem:InlinePythonRequirement:
    expressionLib:
      - |
        def human(n):
            for unit in ("B", "KiB", "MiB", "GiB"):
                if n < 1024:
                    return "%d %s" % (n, unit)
                n //= 1024
            return "%d TiB" % n
inputs:
  files: File[]
baseCommand: echo
arguments:
  - $(", ".join(f.basename + " (" + human(f.size) + ")" for f in inputs.files))
stdout: sizes.txt
outputs:
  sizes: stdout
  total:
    type: int
    outputBinding:
      outputEval: |
        ${
        total = 0
        for f in inputs.files:
            total += f.size
        return total
        }
