#!/usr/bin/env -S xylem cwl
# Counts the words of a text file, most frequent first.
#   xylem cwl --outdir out wordfreq.cwl job.yml
cwlVersion: v1.2
class: CommandLineTool
doc: Word frequencies of a text, most frequent first.
requirements:
  ShellCommandRequirement: {}
  InlineJavascriptRequirement: {}
inputs:
  text:
    type: File
    doc: the text to count
  top:
    type: int
    default: 10
    doc: how many words to keep
arguments:
  - shellQuote: false
    valueFrom: >
      tr -cs '[:alpha:]' '\n' < $(inputs.text.path) | tr '[:upper:]' '[:lower:]'
      | grep -v '^$' | sort | uniq -c | sort -k1,1nr -k2 | head -n $(inputs.top)
stdout: $(inputs.text.nameroot).freq.txt
outputs:
  frequencies:
    type: stdout
  distinct:
    type: int
    outputBinding:
      glob: $(inputs.text.nameroot).freq.txt
      loadContents: true
      outputEval: $(self[0].contents.split('\n').filter(function(l) { return l.length > 0; }).length)
