"""The vocabulary of lorakom: identifiers, uplinks, readings and errors.

Nothing here does I/O; every other package speaks in these types.
"""
