"""Physical values to payload bytes, in each vendor's own frame layout.

These are the inverses of the built-in decoders: a simulated EM500-UDL sends exactly the
bytes a real one would, so everything after the network server is exercised as in the
field. Values are rounded to the resolution of the wire format and clamped to what its
fields can hold; an out-of-range value never raises, as a real sensor would also clip.

Layouts by family:
- Milesight IoT: records of channel id, channel type and a little-endian value (fPort 85).
- Decentlab protocol v2: version, device id, a bit mask of sensor groups, then big-endian
  16-bit words per present group (fPort 1).
- Elsys: records of a type byte and a big-endian value (fPort 5 by default).
- Dragino: fixed big-endian frames whose first word is the battery in mV (fPort 2).
- nwave and Bosch parking sensors: one status byte with bit 0 = occupied (fPort 1), a
  heartbeat (fPort 2) and a start-up frame (fPort 3).
"""
