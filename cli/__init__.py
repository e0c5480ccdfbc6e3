"""The `lorakom` command: composition roots that wire the packages together."""
