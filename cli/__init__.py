"""The `synthrank` command line (installed as the `synthrank_cli` package, so it claims no global `cli` name)."""
