"""Decision notes, pins and ``why``: the reasoning kept next to the records.

* :mod:`reprocas.notes.subjects` — what a note can be about (versions, runs,
  environments, notes) and how a ref names it;
* :mod:`reprocas.notes.store` — writing notes (object, ``note:<id>`` ref, ``notes``
  record, ``about``/``supersedes`` edges), listing them, restoring them at rebuild;
* :mod:`reprocas.notes.pins` — canonical versions (``pin:<dataset>`` refs);
* :mod:`reprocas.notes.why` — answering "why?" from the record, citing ids.
"""
