"""GUI-free helpers of the Slicer module, kept in the engine so pytest covers them without Qt.

- :mod:`.protocol`: parse the child process's ``--progress jsonl`` lines and its ``error:`` line.
- :mod:`.process`: build the ``segment`` command line and run it as a child process (reader threads,
  non-blocking poll, cancel that kills the whole process tree).
- :mod:`.state`: the widget's state machine (idle / starting / running / importing / cancelling / failed).
- :mod:`.dependencies`: which packages of ``Resources/requirements.txt`` are missing, and the one
  confirmation text that lists them all.
- :mod:`.lesion_table` and :mod:`.segment_styles`: the lesion table's columns and the segments' names,
  colours and codes, read from ``Resources/``.

Nothing here imports ``slicer``, ``qt``, ``ctk`` or ``vtk``.
"""

from __future__ import annotations
