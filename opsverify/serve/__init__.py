"""`ops serve`'s machinery: the scheduler running `ops verify` (scheduler.py) and the HTTP
answers rendered from its last run (web.py). The command itself is opsverify/commands/serve.py."""
