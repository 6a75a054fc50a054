"""The pure functional core of pingu: events in, commands out, no I/O."""
