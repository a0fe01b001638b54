"""The soak: the gates run again and again, every run appended to a ledger, then one report.

ledger.py    the on-disk ledger (JSON Lines, SIGKILL-safe)
runner.py    one iteration (`ops verify` in a child process) and the schedule
analysis.py  the ledger analysed: each gate's timeline, flapping, restarts, the verdict
report.py    the analysis rendered as one self-contained HTML file
"""
