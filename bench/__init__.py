"""Benchmarks: rehosting against raw transfer, in bounded memory, measured in the same run.

Run ``python -m bench`` (``--smoke`` for tiny sizes) from the repository root. Every
number is compared with a reference measured in the same run on the same machine:
``curl`` and the imgbbpy package for uploads, the arithmetic ideal for bursts. The host
emulator runs in its own process, and so does each measured client, so that one's memory
and CPU never count against another's.

Modules: ``cli`` runs everything and prints the table, ``server`` is the emulator process,
``worker`` the measured bot-side process, ``probe`` reads memory and event-loop lag,
``report`` turns the numbers into rows. ``scale`` (run only with ``--only scale``) runs the
bot as separate processes on PostgreSQL: ``fleet`` starts and kills them, ``traffic`` plays
the people and reads the answers, ``cpu`` counts CPU time, ``scale_report`` makes the rows.
"""
