"""Prompts at the moments people slip (opt-in, never blocking; docs/CLI.md, "Prompts").

* :mod:`reprocas.prompts.settings` — ``prompt.data-change`` and ``prompt.snapshot-on-save``
  in the repository config;
* :mod:`reprocas.prompts.ask` — whether a question may be asked (a terminal, no
  ``--yes``/``--no-input``/``REPROCAS_NO_INPUT``/``CI``) and asking it;
* :mod:`reprocas.prompts.run` — what ``reprocas run`` checks before and after the command.
"""
