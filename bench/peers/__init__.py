"""`make bench-peers`: perf_analyzer against MLOS, Seldon MLServer and the in-process floor.

Runs in the project's virtualenv, except ``mlserver_*.py`` which run in MLServer's own
(bench/.peers/mlserver, made by ``setup.sh``). See bench/README.md.
"""
