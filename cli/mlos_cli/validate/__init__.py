"""`mlos validate`: every model of the zoo through a running suite, compared with the in-process
runtime, written as JSON and a self-contained HTML dashboard (see command.py)."""
