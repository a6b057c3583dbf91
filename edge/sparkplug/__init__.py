"""Sparkplug B 3.0 edge node: the site's topic tree as Sparkplug devices (edge/sparkplug/README.md).

`session` is the pure protocol core (births, deaths, aliases, bdSeq and seq); `payload` encodes
and decodes Sparkplug payloads with protobuf; `service` is the MQTT shell.
"""
