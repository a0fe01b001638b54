"""One module per `ops` command."""
