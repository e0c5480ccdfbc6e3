"""What the platform does: use cases, alerts and their delivery, redecoding, codec-script following."""
