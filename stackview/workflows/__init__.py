"""The jobs a user runs, as typed functions the CLI, the window and the wizard all call (no Qt).

Each module holds a job's configuration (a frozen dataclass), the function that runs it
(``fn(job, ..., progress, cancel)``) and the job's ``stackview ...`` command line
(``*_argv(job)``; :func:`stackview.cli.parse_job` reads one back into the same configuration):

- :mod:`.analyze` — ``stackview analyze`` (one image for the window, files and folders written
  for the CLI);
- :mod:`.dataset` — ``stackview dataset make``;
- :mod:`.train` — ``stackview train``, and the one place a model card is built;
- :mod:`.evaluate` — ``stackview evaluate``;
- :mod:`.style` — ``stackview style select|train|translate|evaluate`` (the wizard's style steps
  too);
- :mod:`.pel` — ``stackview pel``;
- :mod:`.commandline` — argv → the text shown and recorded as provenance.

The science lives in the packages below (analysis, pel, style, datasets, inference, models); a
workflow only assembles their calls. Importing this package imports nothing heavy.
"""
