"""Every way an uplink gets in: network-server adapters, the MQTT bridge, webhooks and backfills."""
