"""Document sources, tokenizers and the resumable segment stream for MELODI.

Glossary of shapes (used in every module of this package):
- R: batch rows read by one host (a multiple of its local devices).
- T: segment length in tokens (4096 by default); a multiple of the window W.
- D: pmap devices of one host; each holds R // D rows.

Start at `pipeline.make_stream`.  The invariant the model relies on: segment
k+1 of a document stays in the same batch row as segment k, and
`start_of_sequence` is True exactly on a document's first segment.
"""
